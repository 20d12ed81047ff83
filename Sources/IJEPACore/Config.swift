import CIJEPA

/// Everything that defines a model and its training recipe. Field for field the same as
/// `ijepa_config` in include/ijepa.h; `ModelConfig.fields` (below) is the one list of the
/// fields. Defaults are the official recipe's values on a vit_tiny-sized model at 224/16.
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

// MARK: - the field table

/// One field of ModelConfig and of `ijepa_config`: its name (the header's, the checkpoint
/// JSON's and the bindings'), its kind, its place in the C struct and its conversions.
/// `ModelConfig.fields` is the only list of the fields: the C conversion in both directions,
/// the checkpoint JSON, equality, the Swift API's coding and the descriptions the bindings read
/// (`ijepa_config_field`) all iterate it. Adding a field means declaring it in the header,
/// adding the stored property and its line in the table, and using it.
public struct ConfigField: Sendable {
    /// The C type; the raw values are the header's IJEPA_TYPE_* constants.
    public enum Kind: Int32, Sendable {
        case int32 = 1, int64 = 2, uint64 = 3, float = 4
        /// int32_t holding 0 or 1.
        case bool = 5
        /// float[2]: (min, max).
        case floatPair = 6
        public var cSize: Int { switch self { case .int64, .uint64, .floatPair: 8; default: 4 } }
    }
    public let name: String
    public let kind: Kind
    /// Byte offset of the field in ijepa_config.
    public let cOffset: Int
    /// A caller's struct holds the field only when its struct_size reaches this end.
    public var cEnd: Int { cOffset + kind.cSize }
    /// Not in the first release's struct: absent from older checkpoints and structs, which
    /// means the default.
    public var appended: Bool { cEnd > ModelConfig.firstReleaseCSize }
    public let get: @Sendable (ModelConfig) -> JSONValue
    /// false: the value is missing or of the wrong type; the config is then unchanged.
    public let set: @Sendable (inout ModelConfig, JSONValue) -> Bool
    public let toC: @Sendable (ModelConfig, inout ijepa_config) -> Void
    public let fromC: @Sendable (ijepa_config, inout ModelConfig) -> Void

    private init<S, C>(_ name: String, _ kind: Kind, _ kp: WritableKeyPath<ModelConfig, S> & Sendable,
                       _ ckp: WritableKeyPath<ijepa_config, C> & Sendable,
                       json: @escaping @Sendable (S) -> JSONValue, parse: @escaping @Sendable (JSONValue) -> S?,
                       toC: @escaping @Sendable (S) -> C, fromC: @escaping @Sendable (C) -> S) {
        self.name = name
        self.kind = kind
        // Every table entry names a stored field of the imported struct, so the offset exists;
        // the fallback (past the end) would fail the field-table tests, never trap.
        cOffset = MemoryLayout<ijepa_config>.offset(of: ckp) ?? MemoryLayout<ijepa_config>.size
        get = { json($0[keyPath: kp]) }
        set = { c, v in
            guard let x = parse(v) else { return false }
            c[keyPath: kp] = x; return true
        }
        self.toC = { c, o in o[keyPath: ckp] = toC(c[keyPath: kp]) }
        self.fromC = { o, c in c[keyPath: kp] = fromC(o[keyPath: ckp]) }
    }

    static func int(_ name: String, _ kp: WritableKeyPath<ModelConfig, Int> & Sendable,
                    _ ckp: WritableKeyPath<ijepa_config, Int32> & Sendable) -> ConfigField {
        ConfigField(name, .int32, kp, ckp, json: { .number(Double($0)) }, parse: {
            guard let d = $0.number, d == d.rounded(), abs(d) < 1e9 else { return nil }
            return Int(d)
        }, toC: { Int32(clamping: $0) }, fromC: { Int($0) })
    }
    static func float(_ name: String, _ kp: WritableKeyPath<ModelConfig, Float> & Sendable,
                      _ ckp: WritableKeyPath<ijepa_config, Float> & Sendable) -> ConfigField {
        ConfigField(name, .float, kp, ckp, json: { .number(Double($0)) }, parse: { $0.number.map(Float.init) },
                    toC: { $0 }, fromC: { $0 })
    }
    static func pair(_ name: String, _ kp: WritableKeyPath<ModelConfig, (Float, Float)> & Sendable,
                     _ ckp: WritableKeyPath<ijepa_config, (Float, Float)> & Sendable) -> ConfigField {
        ConfigField(name, .floatPair, kp, ckp, json: { .array([.number(Double($0.0)), .number(Double($0.1))]) }, parse: {
            guard let a = $0.array, a.count == 2, let x = a[0].number, let y = a[1].number else { return nil }
            return (Float(x), Float(y))
        }, toC: { $0 }, fromC: { $0 })
    }
    static func bool(_ name: String, _ kp: WritableKeyPath<ModelConfig, Bool> & Sendable,
                     _ ckp: WritableKeyPath<ijepa_config, Int32> & Sendable) -> ConfigField {
        ConfigField(name, .bool, kp, ckp, json: { .bool($0) }, parse: { $0.bool },
                    toC: { $0 ? 1 : 0 }, fromC: { $0 != 0 })
    }
    /// 64-bit integers are written as JSON strings (a JSON number is a double); read from a
    /// string, or from a number that is an exact integer.
    static func int64(_ name: String, _ kp: WritableKeyPath<ModelConfig, Int64> & Sendable,
                      _ ckp: WritableKeyPath<ijepa_config, Int64> & Sendable) -> ConfigField {
        ConfigField(name, .int64, kp, ckp, json: { .string(String($0)) }, parse: { v in
            if let s = v.string { return Int64(s) }
            guard let d = v.number, d == d.rounded(), abs(d) <= 9.007199254740992e15 else { return nil }
            return Int64(d)
        }, toC: { $0 }, fromC: { $0 })
    }
    static func uint64(_ name: String, _ kp: WritableKeyPath<ModelConfig, UInt64> & Sendable,
                       _ ckp: WritableKeyPath<ijepa_config, UInt64> & Sendable) -> ConfigField {
        ConfigField(name, .uint64, kp, ckp, json: { .string(String($0)) }, parse: { v in
            if let s = v.string { return UInt64(s) }
            guard let d = v.number, d == d.rounded(), d >= 0, d <= 9.007199254740992e15 else { return nil }
            return UInt64(d)
        }, toC: { $0 }, fromC: { $0 })
    }
}

extension ModelConfig {
    /// Every field, in the order of ijepa_config in include/ijepa.h.
    public static let fields: [ConfigField] = [
        .int("image_size", \.imageSize, \.image_size), .int("patch_size", \.patchSize, \.patch_size),
        .int("in_chans", \.inChans, \.in_chans),
        .int("embed_dim", \.embedDim, \.embed_dim), .int("depth", \.depth, \.depth),
        .int("num_heads", \.numHeads, \.num_heads),
        .float("mlp_ratio", \.mlpRatio, \.mlp_ratio),
        .int("pred_embed_dim", \.predEmbedDim, \.pred_embed_dim), .int("pred_depth", \.predDepth, \.pred_depth),
        .int("pred_num_heads", \.predNumHeads, \.pred_num_heads),
        .int("num_enc_masks", \.numEncMasks, \.num_enc_masks), .int("num_pred_masks", \.numPredMasks, \.num_pred_masks),
        .int("min_keep", \.minKeep, \.min_keep),
        .bool("allow_overlap", \.allowOverlap, \.allow_overlap), .bool("full_grid", \.fullGrid, \.full_grid),
        .pair("enc_mask_scale", \.encMaskScale, \.enc_mask_scale),
        .pair("pred_mask_scale", \.predMaskScale, \.pred_mask_scale),
        .pair("aspect_ratio", \.aspectRatio, \.aspect_ratio),
        .float("start_lr", \.startLR, \.start_lr), .float("lr", \.lr, \.lr), .float("final_lr", \.finalLR, \.final_lr),
        .float("weight_decay", \.weightDecay, \.weight_decay),
        .float("final_weight_decay", \.finalWeightDecay, \.final_weight_decay),
        .float("ema_start", \.emaStart, \.ema_start), .float("ema_end", \.emaEnd, \.ema_end),
        .int64("warmup_steps", \.warmupSteps, \.warmup_steps), .int64("total_steps", \.totalSteps, \.total_steps),
        .uint64("seed", \.seed, \.seed), .int("n_threads", \.nThreads, \.n_threads),
        .bool("ragged_context", \.raggedContext, \.ragged_context),
    ]

    /// sizeof(ijepa_config) in the first release of ABI 1: up to n_threads plus 4 bytes of tail
    /// padding (now the field `reserved0`, never read). A caller's struct must be at least this
    /// large; fields past it are read and written only when the caller's struct_size covers
    /// them, so a struct from an older header gets their defaults and is never written past.
    public static let firstReleaseCSize = (MemoryLayout<ijepa_config>.offset(of: \ijepa_config.reserved0) ?? 0) + 4

    /// The C struct, every field set, struct_size = sizeof(ijepa_config).
    public var cStruct: ijepa_config {
        var o = ijepa_config()
        o.struct_size = UInt32(MemoryLayout<ijepa_config>.size)
        for f in Self.fields { f.toC(self, &o) }
        return o
    }

    /// From a caller's struct whose struct_size (at least firstReleaseCSize, checked by the
    /// caller) is `size`: the fields it covers; the others keep their defaults.
    public init(cStruct o: ijepa_config, size: Int) {
        self.init()
        for f in Self.fields where f.cEnd <= size { f.fromC(o, &self) }
    }
}
