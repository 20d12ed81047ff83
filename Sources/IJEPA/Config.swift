internal import IJEPACore

/// Everything that defines a model and its training recipe: field for field `ijepa_config` of
/// the C ABI, with camelCase names and ranges as `ClosedRange<Float>`.
///
/// `Config()` is the official recipe on a vit_tiny-sized model at 224/16 (see `init()`); start
/// from it or from a `Preset` and change what you need:
///
/// ```swift
/// var config = Config.preset(.tiny32)
/// config.depth = 4
/// config.totalSteps = 5_000
/// try config.validate()
/// ```
///
/// A `Config` is a plain value: it may hold invalid values until it is used. `validate()`
/// (called by `Model(config:)`) checks everything.
///
/// **Codable.** The coding keys are the C header's snake_case field names (`image_size`,
/// `enc_mask_scale`, ...), the same as the `ijepa.config` JSON stored in checkpoints; ranges are
/// `[min, max]` arrays. When decoding, missing keys keep their `Config()` defaults, unknown
/// keys are ignored, and `warmup_steps`, `total_steps` and `seed` may be numbers or decimal
/// strings (checkpoints store them as strings to keep 64 bits exact). Decoding does not
/// validate; call `validate()`.
public struct Config: Sendable, Hashable, Codable {
    // MARK: model

    /// Side of the square input images, in pixels (224).
    public var imageSize: Int = 224
    /// Side of the square patches, in pixels (16). Must divide `imageSize`.
    public var patchSize: Int = 16
    /// Image channels (3).
    public var inChans: Int = 3
    /// Encoder width D (192). Divisible by `numHeads` and by 4.
    public var embedDim: Int = 192
    /// Encoder blocks (12).
    public var depth: Int = 12
    /// Encoder attention heads (3).
    public var numHeads: Int = 3
    /// Encoder MLP hidden width / `embedDim` (4). The predictor's MLP ratio is always 4.
    public var mlpRatio: Float = 4
    /// Predictor width (384). Divisible by the predictor's heads and by 4.
    public var predEmbedDim: Int = 384
    /// Predictor blocks (6).
    public var predDepth: Int = 6
    /// Predictor attention heads; 0 means "the same as `numHeads`", as the official code does.
    public var predNumHeads: Int = 0

    // MARK: masks (the official multi-block collator)

    /// Context (encoder) masks per image (1).
    public var numEncMasks: Int = 1
    /// Target (predictor) masks per image (4).
    public var numPredMasks: Int = 4
    /// A block must keep more than this many patches (10).
    public var minKeep: Int = 10
    /// Let context blocks overlap the target blocks (false).
    public var allowOverlap: Bool = false
    /// Opt-in fix of the official off-by-one block placement (PR #40): blocks may touch the last
    /// patch row/column and the context may be the full grid (false = official behaviour).
    public var fullGrid: Bool = false
    /// Not the official code: every image keeps its whole context instead of the cut to the
    /// batch minimum (see `Model.sampleMasks(batch:ragged:)`); false = official behaviour.
    public var raggedContext: Bool = false
    /// Fraction of the patch grid a context block covers (0.85...1.0).
    public var encMaskScale: ClosedRange<Float> = 0.85...1.0
    /// Fraction of the patch grid a target block covers (0.15...0.2).
    public var predMaskScale: ClosedRange<Float> = 0.15...0.2
    /// Height/width ratio of target blocks (0.75...1.5).
    public var aspectRatio: ClosedRange<Float> = 0.75...1.5

    // MARK: optimization

    /// Learning rate at step 0; linear warmup from here to `lr` (2e-4).
    public var startLR: Float = 2e-4
    /// Peak learning rate, reached after `warmupSteps` (1e-3).
    public var lr: Float = 1e-3
    /// Learning rate at `totalSteps`, after the cosine decay (1e-6).
    public var finalLR: Float = 1e-6
    /// AdamW weight decay at step 0 (0.04); cosine schedule to `finalWeightDecay`.
    public var weightDecay: Float = 0.04
    /// Weight decay at `totalSteps` (0.4).
    public var finalWeightDecay: Float = 0.4
    /// EMA momentum of the target encoder at step 0 (0.996); linear to `emaEnd`.
    public var emaStart: Float = 0.996
    /// EMA momentum at `totalSteps` (1.0).
    public var emaEnd: Float = 1.0
    /// Warmup steps of the learning-rate schedule (1000).
    public var warmupSteps: Int64 = 1000
    /// Length of every schedule, in optimizer steps (10000).
    public var totalSteps: Int64 = 10000

    // MARK: runtime

    /// Seed of the weight initialization and of the mask generator (0).
    public var seed: UInt64 = 0
    /// Threads for the model's kernels; <= 0 means all cores (0).
    public var nThreads: Int = 0

    /// The official recipe's defaults on a vit_tiny-sized model: 224 px, patch 16, encoder
    /// 192 x 12 (3 heads), predictor 384 x 6, masks enc 0.85-1.0 / pred 0.15-0.2 / aspect
    /// 0.75-1.5 with 1 context and 4 targets, min_keep 10, lr 2e-4 -> 1e-3 -> 1e-6 (1000 warmup
    /// steps of 10000), weight decay 0.04 -> 0.4, EMA 0.996 -> 1.0. The same as
    /// `ijepa_config_default`.
    public init() {}

    /// A named preset (see `Preset`).
    public init(preset: Preset) {
        // Every Preset case is an engine preset name (checked by the tests).
        self.init(ModelConfig.preset(preset.rawValue) ?? ModelConfig())
    }

    // MARK: presets

    /// The named presets of the library (the same names as `ijepa_config_preset`). Model sizes
    /// follow the official `vit_*` constructors; the predictor is the official default
    /// (384 x 6) unless the preset says otherwise.
    public enum Preset: String, Sendable, Hashable, Codable, CaseIterable {
        /// 192 x 12, 3 heads, 224/16 (the same as `Config()`).
        case vitTiny = "vit_tiny"
        /// 384 x 12, 6 heads, 224/16.
        case vitSmall = "vit_small"
        /// 768 x 12, 12 heads, 224/16.
        case vitBase = "vit_base"
        /// 1024 x 24, 16 heads, 224/16, predictor depth 12.
        case vitLarge = "vit_large"
        /// 1280 x 32, 16 heads, 224/14, predictor depth 12.
        case vitHuge = "vit_huge"
        /// 1408 x 40, 16 heads, MLP ratio 48/11, 224/16, predictor depth 16.
        case vitGiant = "vit_giant"
        /// 32 px grayscale (Fashion-MNIST sized), patch 4, 192 x 6, predictor 96 x 4, min_keep 4.
        case fmnistTiny = "fmnist_tiny"
        /// `fmnistTiny` with `raggedContext` on (not the official code): every image keeps its
        /// whole context. It gave the better features at 20 epochs (docs/ragged.md).
        case fmnistTinyRagged = "fmnist_tiny_ragged"
        /// 32 px RGB, patch 4, 192 x 6, predictor 96 x 3, min_keep 4.
        case tiny32 = "tiny32"
    }

    /// The config of a preset.
    public static func preset(_ preset: Preset) -> Config { Config(preset: preset) }

    /// The config of the preset called `name` ("vit_tiny", "vit_small", "vit_base",
    /// "vit_large", "vit_huge", "vit_giant", "fmnist_tiny", "fmnist_tiny_ragged", "tiny32").
    /// - Throws: `IJEPAError.invalidArgument` naming the known presets if `name` is not one.
    public static func preset(_ name: String) throws(IJEPAError) -> Config {
        guard let c = ModelConfig.preset(name) else {
            throw IJEPAError.invalidArgument(
                "unknown preset '\(name)'; known: \(ModelConfig.presetNames.joined(separator: ", "))")
        }
        return Config(c)
    }

    // MARK: derived sizes

    /// Patches per image side: `imageSize / patchSize`.
    public var gridSize: Int { patchSize > 0 ? imageSize / patchSize : 0 }
    /// Patches per image, N = `gridSize * gridSize`. Patch index n = row * gridSize + col.
    /// (Wraps instead of trapping for absurd, invalid sizes.)
    public var numPatches: Int { gridSize &* gridSize }
    /// Floats per image: `inChans * imageSize * imageSize` (the images are NCHW).
    /// (Wraps instead of trapping for absurd, invalid sizes.)
    public var floatsPerImage: Int { inChans &* imageSize &* imageSize }

    // MARK: validation

    /// Checks every field, and that the mask generator can always produce valid masks (a
    /// block larger than `minKeep` must exist, where the official sampler would loop forever).
    /// This is everything `Model(config:)` checks except the machine's memory.
    /// - Throws: `IJEPAError.invalidArgument` whose message names the field (by its C/JSON
    ///   snake_case name) and the rule it breaks.
    public func validate() throws(IJEPAError) {
        let c = core
        try engine {
            try c.validate()
            _ = try MaskCollator(config: c)
        }
    }

    // MARK: Codable

    enum CodingKeys: String, CodingKey {
        case imageSize = "image_size", patchSize = "patch_size", inChans = "in_chans"
        case embedDim = "embed_dim", depth, numHeads = "num_heads", mlpRatio = "mlp_ratio"
        case predEmbedDim = "pred_embed_dim", predDepth = "pred_depth", predNumHeads = "pred_num_heads"
        case numEncMasks = "num_enc_masks", numPredMasks = "num_pred_masks", minKeep = "min_keep"
        case allowOverlap = "allow_overlap", fullGrid = "full_grid"
        case encMaskScale = "enc_mask_scale", predMaskScale = "pred_mask_scale", aspectRatio = "aspect_ratio"
        case startLR = "start_lr", lr, finalLR = "final_lr"
        case weightDecay = "weight_decay", finalWeightDecay = "final_weight_decay"
        case emaStart = "ema_start", emaEnd = "ema_end"
        case warmupSteps = "warmup_steps", totalSteps = "total_steps"
        case seed, nThreads = "n_threads", raggedContext = "ragged_context"
    }

    /// Decodes a config; see the type's documentation for the format.
    public init(from decoder: any Decoder) throws {
        self.init()
        let k = try decoder.container(keyedBy: CodingKeys.self)
        func get<T: Decodable>(_ key: CodingKeys, _ value: inout T) throws {
            if let v = try k.decodeIfPresent(T.self, forKey: key) { value = v }
        }
        func range(_ key: CodingKeys, _ value: inout ClosedRange<Float>) throws {
            guard let a = try k.decodeIfPresent([Float].self, forKey: key) else { return }
            guard a.count == 2, a[0] <= a[1] else {
                throw DecodingError.dataCorruptedError(
                    forKey: key, in: k, debugDescription: "expected [min, max] with min <= max, got \(a)")
            }
            value = a[0]...a[1]
        }
        /// A 64-bit integer as a JSON number or as a decimal string.
        func wide<T: FixedWidthInteger & Decodable>(_ key: CodingKeys, _ value: inout T) throws {
            guard k.contains(key) else { return }
            if let s = try? k.decode(String.self, forKey: key) {
                guard let v = T(s) else {
                    throw DecodingError.dataCorruptedError(
                        forKey: key, in: k, debugDescription: "'\(s)' is not a valid \(T.self)")
                }
                value = v
            } else {
                value = try k.decode(T.self, forKey: key)
            }
        }
        try get(.imageSize, &imageSize); try get(.patchSize, &patchSize); try get(.inChans, &inChans)
        try get(.embedDim, &embedDim); try get(.depth, &depth); try get(.numHeads, &numHeads)
        try get(.mlpRatio, &mlpRatio)
        try get(.predEmbedDim, &predEmbedDim); try get(.predDepth, &predDepth)
        try get(.predNumHeads, &predNumHeads)
        try get(.numEncMasks, &numEncMasks); try get(.numPredMasks, &numPredMasks)
        try get(.minKeep, &minKeep)
        try get(.allowOverlap, &allowOverlap); try get(.fullGrid, &fullGrid)
        try range(.encMaskScale, &encMaskScale); try range(.predMaskScale, &predMaskScale)
        try range(.aspectRatio, &aspectRatio)
        try get(.startLR, &startLR); try get(.lr, &lr); try get(.finalLR, &finalLR)
        try get(.weightDecay, &weightDecay); try get(.finalWeightDecay, &finalWeightDecay)
        try get(.emaStart, &emaStart); try get(.emaEnd, &emaEnd)
        try wide(.warmupSteps, &warmupSteps); try wide(.totalSteps, &totalSteps)
        try wide(.seed, &seed)
        try get(.nThreads, &nThreads)
        try get(.raggedContext, &raggedContext)
    }

    /// Encodes every field (numbers for the 64-bit fields; see the type's documentation).
    public func encode(to encoder: any Swift.Encoder) throws {
        var k = encoder.container(keyedBy: CodingKeys.self)
        try k.encode(imageSize, forKey: .imageSize); try k.encode(patchSize, forKey: .patchSize)
        try k.encode(inChans, forKey: .inChans)
        try k.encode(embedDim, forKey: .embedDim); try k.encode(depth, forKey: .depth)
        try k.encode(numHeads, forKey: .numHeads); try k.encode(mlpRatio, forKey: .mlpRatio)
        try k.encode(predEmbedDim, forKey: .predEmbedDim); try k.encode(predDepth, forKey: .predDepth)
        try k.encode(predNumHeads, forKey: .predNumHeads)
        try k.encode(numEncMasks, forKey: .numEncMasks); try k.encode(numPredMasks, forKey: .numPredMasks)
        try k.encode(minKeep, forKey: .minKeep)
        try k.encode(allowOverlap, forKey: .allowOverlap); try k.encode(fullGrid, forKey: .fullGrid)
        for (r, key) in [(encMaskScale, CodingKeys.encMaskScale), (predMaskScale, .predMaskScale),
                         (aspectRatio, .aspectRatio)] {
            try k.encode([r.lowerBound, r.upperBound], forKey: key)
        }
        try k.encode(startLR, forKey: .startLR); try k.encode(lr, forKey: .lr); try k.encode(finalLR, forKey: .finalLR)
        try k.encode(weightDecay, forKey: .weightDecay); try k.encode(finalWeightDecay, forKey: .finalWeightDecay)
        try k.encode(emaStart, forKey: .emaStart); try k.encode(emaEnd, forKey: .emaEnd)
        try k.encode(warmupSteps, forKey: .warmupSteps); try k.encode(totalSteps, forKey: .totalSteps)
        try k.encode(seed, forKey: .seed); try k.encode(nThreads, forKey: .nThreads)
        try k.encode(raggedContext, forKey: .raggedContext)
    }
}

// MARK: conversion to and from the engine's config

extension Config {
    init(_ c: ModelConfig) {
        func range(_ t: (Float, Float)) -> ClosedRange<Float> {
            // Engine configs come from validated sources; uncheckedBounds never traps.
            ClosedRange(uncheckedBounds: (t.0, t.1))
        }
        imageSize = c.imageSize; patchSize = c.patchSize; inChans = c.inChans
        embedDim = c.embedDim; depth = c.depth; numHeads = c.numHeads; mlpRatio = c.mlpRatio
        predEmbedDim = c.predEmbedDim; predDepth = c.predDepth; predNumHeads = c.predNumHeads
        numEncMasks = c.numEncMasks; numPredMasks = c.numPredMasks; minKeep = c.minKeep
        allowOverlap = c.allowOverlap; fullGrid = c.fullGrid
        encMaskScale = range(c.encMaskScale); predMaskScale = range(c.predMaskScale)
        aspectRatio = range(c.aspectRatio)
        startLR = c.startLR; lr = c.lr; finalLR = c.finalLR
        weightDecay = c.weightDecay; finalWeightDecay = c.finalWeightDecay
        emaStart = c.emaStart; emaEnd = c.emaEnd
        warmupSteps = c.warmupSteps; totalSteps = c.totalSteps
        seed = c.seed; nThreads = c.nThreads
        raggedContext = c.raggedContext
    }

    var core: ModelConfig {
        var c = ModelConfig()
        c.imageSize = imageSize; c.patchSize = patchSize; c.inChans = inChans
        c.embedDim = embedDim; c.depth = depth; c.numHeads = numHeads; c.mlpRatio = mlpRatio
        c.predEmbedDim = predEmbedDim; c.predDepth = predDepth; c.predNumHeads = predNumHeads
        c.numEncMasks = numEncMasks; c.numPredMasks = numPredMasks; c.minKeep = minKeep
        c.allowOverlap = allowOverlap; c.fullGrid = fullGrid
        c.encMaskScale = (encMaskScale.lowerBound, encMaskScale.upperBound)
        c.predMaskScale = (predMaskScale.lowerBound, predMaskScale.upperBound)
        c.aspectRatio = (aspectRatio.lowerBound, aspectRatio.upperBound)
        c.startLR = startLR; c.lr = lr; c.finalLR = finalLR
        c.weightDecay = weightDecay; c.finalWeightDecay = finalWeightDecay
        c.emaStart = emaStart; c.emaEnd = emaEnd
        c.warmupSteps = warmupSteps; c.totalSteps = totalSteps
        c.seed = seed; c.nThreads = nThreads
        c.raggedContext = raggedContext
        return c
    }
}
