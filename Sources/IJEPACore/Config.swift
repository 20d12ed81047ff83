/// Everything that defines a model and its training recipe. Field for field the same as
/// `ijepa_config` in include/ijepa.h. Defaults are the official recipe's values on a
/// vit_tiny-sized model at 224/16.
public struct ModelConfig: Equatable, Sendable {
    public var imageSize: Int = 224
    public var patchSize: Int = 16
    public var inChans: Int = 3
    public var embedDim: Int = 192
    public var depth: Int = 12
    public var numHeads: Int = 3
    public var mlpRatio: Float = 4
    public var predEmbedDim: Int = 384
    public var predDepth: Int = 6
    /// 0 means "same as numHeads", as the official code does.
    public var predNumHeads: Int = 0
    public var numEncMasks: Int = 1
    public var numPredMasks: Int = 4
    public var minKeep: Int = 10
    public var allowOverlap: Bool = false
    /// Opt-in fix of the official off-by-one block placement (PR #40): blocks may touch the
    /// last patch row/column and the context may be the full grid.
    public var fullGrid: Bool = false
    public var encMaskScale: (Float, Float) = (0.85, 1.0)
    public var predMaskScale: (Float, Float) = (0.15, 0.2)
    public var aspectRatio: (Float, Float) = (0.75, 1.5)
    public var startLR: Float = 2e-4
    public var lr: Float = 1e-3
    public var finalLR: Float = 1e-6
    public var weightDecay: Float = 0.04
    public var finalWeightDecay: Float = 0.4
    public var emaStart: Float = 0.996
    public var emaEnd: Float = 1.0
    public var warmupSteps: Int64 = 1000
    public var totalSteps: Int64 = 10000
    public var seed: UInt64 = 0
    /// <= 0: all cores.
    public var nThreads: Int = 0
    /// Not the official code: every image keeps its whole context instead of the cut to the
    /// batch minimum (MaskCollator.sample(ragged:)). Off by default.
    public var raggedContext: Bool = false

    public init() {}

    /// Field by field over ModelConfig.fields (floats compared as floats: NaN is unequal).
    public static func == (a: ModelConfig, b: ModelConfig) -> Bool {
        fields.allSatisfy { $0.get(a) == $0.get(b) }
    }

    // MARK: derived sizes
    public var gridSize: Int { imageSize / patchSize }
    public var numPatches: Int { gridSize * gridSize }
    public var patchDim: Int { inChans * patchSize * patchSize }
    public var mlpHidden: Int { Int(Float(embedDim) * mlpRatio) }
    /// The official `vit_predictor` always uses mlp_ratio 4, whatever the encoder's.
    public var predMlpHidden: Int { predEmbedDim * 4 }
    public var effectivePredHeads: Int { predNumHeads <= 0 ? numHeads : predNumHeads }

    /// Named presets. Model sizes follow `vit_*` of the official code (src/models/vision_transformer.py); the predictor is
    /// the official default (depth 6, width 384) unless the preset says otherwise.
    public static func preset(_ name: String) -> ModelConfig? {
        var c = ModelConfig()
        switch name {
        case "vit_tiny": (c.embedDim, c.depth, c.numHeads) = (192, 12, 3)
        case "vit_small": (c.embedDim, c.depth, c.numHeads) = (384, 12, 6)
        case "vit_base": (c.embedDim, c.depth, c.numHeads) = (768, 12, 12)
        case "vit_large":
            (c.embedDim, c.depth, c.numHeads) = (1024, 24, 16); c.predDepth = 12
        case "vit_huge":
            (c.embedDim, c.depth, c.numHeads) = (1280, 32, 16); c.predDepth = 12
            c.patchSize = 14
        case "vit_giant":
            (c.embedDim, c.depth, c.numHeads) = (1408, 40, 16); c.predDepth = 16
            c.mlpRatio = 48.0 / 11.0
        case "fmnist_tiny", "fmnist-tiny":
            c.imageSize = 32; c.patchSize = 4; c.inChans = 1
            (c.embedDim, c.depth, c.numHeads) = (192, 6, 3)
            c.predEmbedDim = 96; c.predDepth = 4
            c.minKeep = 4
        case "fmnist_tiny_ragged", "fmnist-tiny-ragged":
            // fmnist_tiny with ragged contexts (not the official code): the better features at
            // 20 epochs on Fashion-MNIST (docs/ragged.md).
            guard let tiny = preset("fmnist_tiny") else { return nil }
            c = tiny
            c.raggedContext = true
        case "tiny32":
            c.imageSize = 32; c.patchSize = 4
            (c.embedDim, c.depth, c.numHeads) = (192, 6, 3)
            c.predEmbedDim = 96; c.predDepth = 3
            c.minKeep = 4
        default: return nil
        }
        return c
    }

    public static let presetNames = ["vit_tiny", "vit_small", "vit_base", "vit_large", "vit_huge",
                                     "vit_giant", "fmnist_tiny", "fmnist_tiny_ragged", "tiny32"]

    /// Checks every field; the message names the field and the rule it breaks.
    public func validate() throws {
        func bad(_ m: String) -> IJEPAError { .invalidArgument("config: " + m) }
        func pos(_ v: Int, _ n: String, max: Int = 1 << 20) throws {
            if v <= 0 || v > max { throw bad("\(n) must be in 1...\(max), got \(v)") }
        }
        try pos(imageSize, "image_size", max: 16384)
        try pos(patchSize, "patch_size", max: 4096)
        try pos(inChans, "in_chans", max: 64)
        try pos(embedDim, "embed_dim", max: 16384)
        try pos(depth, "depth", max: 512)
        try pos(numHeads, "num_heads", max: 1024)
        try pos(predEmbedDim, "pred_embed_dim", max: 16384)
        try pos(predDepth, "pred_depth", max: 512)
        if predNumHeads < 0 || predNumHeads > 1024 { throw bad("pred_num_heads must be in 0...1024, got \(predNumHeads)") }
        if imageSize % patchSize != 0 {
            throw bad("image_size (\(imageSize)) must be divisible by patch_size (\(patchSize))")
        }
        if gridSize < 2 { throw bad("the patch grid must be at least 2x2 (image_size/patch_size = \(gridSize))") }
        if numPatches > 65536 { throw bad("too many patches (\(numPatches)); at most 65536") }
        if embedDim % numHeads != 0 { throw bad("embed_dim (\(embedDim)) must be divisible by num_heads (\(numHeads))") }
        if predEmbedDim % effectivePredHeads != 0 {
            throw bad("pred_embed_dim (\(predEmbedDim)) must be divisible by the predictor's heads (\(effectivePredHeads))")
        }
        if embedDim % 4 != 0 { throw bad("embed_dim (\(embedDim)) must be divisible by 4 (2-D sin-cos position embedding)") }
        if predEmbedDim % 4 != 0 { throw bad("pred_embed_dim (\(predEmbedDim)) must be divisible by 4 (2-D sin-cos position embedding)") }
        if !mlpRatio.isFinite || mlpRatio <= 0 || mlpRatio > 64 { throw bad("mlp_ratio must be finite and in (0, 64], got \(mlpRatio)") }
        if mlpHidden < 1 { throw bad("mlp_ratio \(mlpRatio) gives an empty MLP") }
        try pos(numEncMasks, "num_enc_masks", max: 64)
        try pos(numPredMasks, "num_pred_masks", max: 64)
        if minKeep < 0 || minKeep >= numPatches { throw bad("min_keep must be in 0..<\(numPatches), got \(minKeep)") }
        func range(_ r: (Float, Float), _ n: String, lo: Float, hi: Float) throws {
            if !r.0.isFinite || !r.1.isFinite || r.0 > r.1 || r.0 < lo || r.1 > hi {
                throw bad("\(n) must be finite with \(lo) <= min <= max <= \(hi), got (\(r.0), \(r.1))")
            }
        }
        try range(encMaskScale, "enc_mask_scale", lo: 0, hi: 1)
        try range(predMaskScale, "pred_mask_scale", lo: 0, hi: 1)
        try range(aspectRatio, "aspect_ratio", lo: 1e-3, hi: 1e3)
        for (v, n) in [(startLR, "start_lr"), (lr, "lr"), (finalLR, "final_lr"),
                       (weightDecay, "weight_decay"), (finalWeightDecay, "final_weight_decay")] {
            if !v.isFinite || v < 0 { throw bad("\(n) must be finite and >= 0, got \(v)") }
        }
        for (v, n) in [(emaStart, "ema_start"), (emaEnd, "ema_end")] {
            if !v.isFinite || v < 0 || v > 1 { throw bad("\(n) must be in [0, 1], got \(v)") }
        }
        if totalSteps <= 0 { throw bad("total_steps must be > 0, got \(totalSteps)") }
        if warmupSteps < 0 || warmupSteps > totalSteps {
            throw bad("warmup_steps must be in 0...total_steps (\(totalSteps)), got \(warmupSteps)")
        }
        do { _ = try Exec.threads(nThreads) } catch { throw bad(error.message) }
    }
}
