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
    /// The engine's config: every field, coded and compared through its field table.
    var core = ModelConfig()

    // MARK: model

    /// Side of the square input images, in pixels (224).
    public var imageSize: Int { get { core.imageSize } set { core.imageSize = newValue } }
    /// Side of the square patches, in pixels (16). Must divide `imageSize`.
    public var patchSize: Int { get { core.patchSize } set { core.patchSize = newValue } }
    /// Image channels (3).
    public var inChans: Int { get { core.inChans } set { core.inChans = newValue } }
    /// Encoder width D (192). Divisible by `numHeads` and by 4.
    public var embedDim: Int { get { core.embedDim } set { core.embedDim = newValue } }
    /// Encoder blocks (12).
    public var depth: Int { get { core.depth } set { core.depth = newValue } }
    /// Encoder attention heads (3).
    public var numHeads: Int { get { core.numHeads } set { core.numHeads = newValue } }
    /// Encoder MLP hidden width / `embedDim` (4). The predictor's MLP ratio is always 4.
    public var mlpRatio: Float { get { core.mlpRatio } set { core.mlpRatio = newValue } }
    /// Predictor width (384). Divisible by the predictor's heads and by 4.
    public var predEmbedDim: Int { get { core.predEmbedDim } set { core.predEmbedDim = newValue } }
    /// Predictor blocks (6).
    public var predDepth: Int { get { core.predDepth } set { core.predDepth = newValue } }
    /// Predictor attention heads; 0 means "the same as `numHeads`", as the official code does.
    public var predNumHeads: Int { get { core.predNumHeads } set { core.predNumHeads = newValue } }

    // MARK: masks (the official multi-block collator)

    /// Context (encoder) masks per image (1).
    public var numEncMasks: Int { get { core.numEncMasks } set { core.numEncMasks = newValue } }
    /// Target (predictor) masks per image (4).
    public var numPredMasks: Int { get { core.numPredMasks } set { core.numPredMasks = newValue } }
    /// A block must keep more than this many patches (10).
    public var minKeep: Int { get { core.minKeep } set { core.minKeep = newValue } }
    /// Let context blocks overlap the target blocks (false).
    public var allowOverlap: Bool { get { core.allowOverlap } set { core.allowOverlap = newValue } }
    /// Opt-in fix of the official off-by-one block placement (PR #40): blocks may touch the last
    /// patch row/column and the context may be the full grid (false = official behaviour).
    public var fullGrid: Bool { get { core.fullGrid } set { core.fullGrid = newValue } }
    /// Not the official code: every image keeps its whole context instead of the cut to the
    /// batch minimum (see `Model.sampleMasks(batch:ragged:)`); false = official behaviour.
    public var raggedContext: Bool { get { core.raggedContext } set { core.raggedContext = newValue } }
    /// Fraction of the patch grid a context block covers (0.85...1.0).
    public var encMaskScale: ClosedRange<Float> {
        // a pair from a validated or decoded source (min <= max); uncheckedBounds never traps
        get { ClosedRange(uncheckedBounds: core.encMaskScale) }
        set { core.encMaskScale = (newValue.lowerBound, newValue.upperBound) }
    }
    /// Fraction of the patch grid a target block covers (0.15...0.2).
    public var predMaskScale: ClosedRange<Float> {
        // a pair from a validated or decoded source (min <= max); uncheckedBounds never traps
        get { ClosedRange(uncheckedBounds: core.predMaskScale) }
        set { core.predMaskScale = (newValue.lowerBound, newValue.upperBound) }
    }
    /// Height/width ratio of target blocks (0.75...1.5).
    public var aspectRatio: ClosedRange<Float> {
        // a pair from a validated or decoded source (min <= max); uncheckedBounds never traps
        get { ClosedRange(uncheckedBounds: core.aspectRatio) }
        set { core.aspectRatio = (newValue.lowerBound, newValue.upperBound) }
    }

    // MARK: optimization

    /// Learning rate at step 0; linear warmup from here to `lr` (2e-4).
    public var startLR: Float { get { core.startLR } set { core.startLR = newValue } }
    /// Peak learning rate, reached after `warmupSteps` (1e-3).
    public var lr: Float { get { core.lr } set { core.lr = newValue } }
    /// Learning rate at `totalSteps`, after the cosine decay (1e-6).
    public var finalLR: Float { get { core.finalLR } set { core.finalLR = newValue } }
    /// AdamW weight decay at step 0 (0.04); cosine schedule to `finalWeightDecay`.
    public var weightDecay: Float { get { core.weightDecay } set { core.weightDecay = newValue } }
    /// Weight decay at `totalSteps` (0.4).
    public var finalWeightDecay: Float { get { core.finalWeightDecay } set { core.finalWeightDecay = newValue } }
    /// EMA momentum of the target encoder at step 0 (0.996); linear to `emaEnd`.
    public var emaStart: Float { get { core.emaStart } set { core.emaStart = newValue } }
    /// EMA momentum at `totalSteps` (1.0).
    public var emaEnd: Float { get { core.emaEnd } set { core.emaEnd = newValue } }
    /// Warmup steps of the learning-rate schedule (1000).
    public var warmupSteps: Int64 { get { core.warmupSteps } set { core.warmupSteps = newValue } }
    /// Length of every schedule, in optimizer steps (10000).
    public var totalSteps: Int64 { get { core.totalSteps } set { core.totalSteps = newValue } }

    // MARK: runtime

    /// Seed of the weight initialization and of the mask generator (0).
    public var seed: UInt64 { get { core.seed } set { core.seed = newValue } }
    /// Threads for the model's kernels; <= 0 means all cores (0).
    public var nThreads: Int { get { core.nThreads } set { core.nThreads = newValue } }

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

    // MARK: Hashable

    /// Field by field (floats compared as floats: NaN is unequal).
    public static func == (a: Config, b: Config) -> Bool { a.core == b.core }

    public func hash(into h: inout Hasher) {
        for f in ModelConfig.fields { hashJSON(f.get(core), into: &h) }
    }

    // MARK: Codable

    /// Decodes a config; see the type's documentation for the format.
    public init(from decoder: any Decoder) throws {
        self.init()
        let k = try decoder.container(keyedBy: FieldKey.self)
        for f in ModelConfig.fields {
            let key = FieldKey(f.name)
            guard k.contains(key) else { continue }
            let v: JSONValue
            switch f.kind {
            case .int32: v = .number(Double(try k.decode(Int32.self, forKey: key)))
            case .float: v = .number(Double(try k.decode(Float.self, forKey: key)))
            case .bool: v = .bool(try k.decode(Bool.self, forKey: key))
            case .floatPair:
                let a = try k.decode([Float].self, forKey: key)
                guard a.count == 2, a[0] <= a[1] else {
                    throw DecodingError.dataCorruptedError(
                        forKey: key, in: k, debugDescription: "expected [min, max] with min <= max, got \(a)")
                }
                v = .array(a.map { .number(Double($0)) })
            case .int64, .uint64:
                // a number, or a decimal string (exact for all 64 bits)
                if let s = try? k.decode(String.self, forKey: key) {
                    v = .string(s)
                } else if f.kind == .int64 {
                    v = .string(String(try k.decode(Int64.self, forKey: key)))
                } else {
                    v = .string(String(try k.decode(UInt64.self, forKey: key)))
                }
            }
            guard f.set(&core, v) else {
                throw DecodingError.dataCorruptedError(
                    forKey: key, in: k, debugDescription: "'\(f.name)' has an invalid value")
            }
        }
    }

    /// Encodes every field (numbers for the 64-bit fields; see the type's documentation).
    public func encode(to encoder: any Swift.Encoder) throws {
        var k = encoder.container(keyedBy: FieldKey.self)
        for f in ModelConfig.fields {
            let key = FieldKey(f.name), v = f.get(core)
            switch (f.kind, v) {
            // the field as a double: Int.max becomes 2^63, no Int (only an invalid config has it)
            case (.int32, .number(let d)): if let i = Int(exactly: d) { try k.encode(i, forKey: key) } else { try k.encode(d, forKey: key) }
            case (.float, .number(let d)): try k.encode(Float(d), forKey: key)
            case (.bool, .bool(let b)): try k.encode(b, forKey: key)
            case (.floatPair, .array(let a)): try k.encode(a.map { Float($0.number ?? .nan) }, forKey: key)
            case (.int64, .string(let s)): try k.encode(Int64(s), forKey: key)
            case (.uint64, .string(let s)): try k.encode(UInt64(s), forKey: key)
            default:
                throw EncodingError.invalidValue(v, .init(codingPath: k.codingPath + [key],
                                                          debugDescription: "field '\(f.name)' has no \(f.kind) value"))
            }
        }
    }
}

/// A config field's JSON key: its C header name.
struct FieldKey: CodingKey {
    let stringValue: String
    init(_ s: String) { stringValue = s }
    init?(stringValue: String) { self.stringValue = stringValue }
    var intValue: Int? { nil }
    init?(intValue: Int) { nil }
}

private func hashJSON(_ v: JSONValue, into h: inout Hasher) {
    switch v {
    case .null: h.combine(0)
    case .bool(let b): h.combine(b)
    case .number(let d): h.combine(d)
    case .string(let s): h.combine(s)
    case .array(let a): h.combine(a.count); for x in a { hashJSON(x, into: &h) }
    case .object(let o): h.combine(o.count); for (k, x) in o { h.combine(k); hashJSON(x, into: &h) }
    }
}

// MARK: conversion to and from the engine's config

extension Config {
    init(_ c: ModelConfig) { core = c }
}
