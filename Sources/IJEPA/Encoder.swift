internal import IJEPACore

/// A pretrained I-JEPA encoder for inference: one ViT encoder's weights and nothing else (no
/// optimizer state, predictor or mask config), loaded from a libijepa checkpoint, official
/// names, a Hugging Face `IJepaModel` or timm weights, or copied from a training `Model`.
///
/// ```swift
/// let encoder = try Encoder.load("ijepa_vith14_1k")              // a Hugging Face directory
/// let pixels = try ImagePreprocess(crop: encoder.imageSize)(rgb: bytes, height: h, width: w)
/// let features = try encoder.encode(images: pixels, batch: 1)    // [embedDim], mean of tokens
/// ```
///
/// **Images** are float32 NCHW, `[batch][inChans][height][width]`, already normalized (see
/// `ImagePreprocess`); height and width default to `imageSize`. Other sizes use the position
/// table resized (`PositionResize`). **Threads**: one thread at a time per encoder.
public final class Encoder: CustomStringConvertible {
    let core: ViTEncoder

    /// Where the weights came from.
    public enum Source: Sendable, Hashable {
        case model, checkpoint, official, huggingFace, timm
    }

    /// How the position table is resized for another patch grid.
    public enum PositionResize: Sendable, Hashable {
        /// As the source's code does: antialiased for timm weights, plain bicubic otherwise.
        case auto
        /// F.interpolate(mode: "bicubic", align_corners: false), as transformers.
        case bicubic
        /// The same with antialias, as timm's resample_abs_pos_embed.
        case bicubicAntialiased

        var core: PosInterpolation {
            switch self {
            case .auto: return .auto
            case .bicubic: return .bicubic
            case .bicubicAntialiased: return .bicubicAntialiased
            }
        }
    }

    init(core: ViTEncoder) { self.core = core }

    /// Loads a safetensors file (with its config.json beside it for Hugging Face and timm
    /// weights) or a Hugging Face model directory; the format is recognised from the content.
    /// - Parameters:
    ///   - encoder: for files holding both (checkpoints, official files): the target encoder
    ///     (default, the one the paper evaluates) or the context encoder.
    ///   - numHeads: when the file's metadata or config.json does not say.
    ///   - nThreads: threads of the kernels; nil or <= 0: all cores.
    /// - Throws: `.io` for a file that cannot be read, `.format` for one that is not an I-JEPA
    ///   encoder (the message says what is missing or wrong), `.numeric` for NaN/Inf weights.
    public static func load(_ path: String, encoder: Model.Encoder = .target, numHeads: Int? = nil,
                            nThreads: Int? = nil, positionResize: PositionResize = .auto) throws(IJEPAError) -> Encoder {
        var o = EncoderLoadOptions()
        o.which = encoder.core
        o.numHeads = numHeads ?? 0
        o.nThreads = nThreads ?? 0
        o.posInterpolation = positionResize.core
        if o.numHeads < 0 { throw IJEPAError.invalidArgument("numHeads must be positive, got \(o.numHeads)") }
        return Encoder(core: try engine { try ViTEncoder.load(from: path, o) })
    }

    /// A copy of a training model's target or context encoder; training on does not change it.
    public convenience init(copying model: Model, encoder: Model.Encoder = .target) throws(IJEPAError) {
        let m = model.core
        self.init(core: try engine { try ViTEncoder(copying: m, encoder.core) })
    }

    /// Writes this encoder as a libijepa encoder file, atomically (a temporary file renamed over
    /// `path`). `load` maps such a file instead of reading it: the weights are the file's
    /// page-cache pages, nothing is copied or packed, so the first features come right after
    /// loading. While an encoder maps a file, do not truncate or rewrite it in place (replace it
    /// by renaming, as this does): the process would be killed reading a page the file lost.
    /// - Throws: `.io` when the file cannot be written.
    public func save(to path: String) throws(IJEPAError) {
        let c = core
        try engine { try c.save(to: path) }
    }

    /// Side of the square images the position table was made for (grid × patchSize).
    public var imageSize: Int { core.imageSize }
    public var patchSize: Int { core.shape.patchSize }
    public var inChans: Int { core.shape.inChans }
    public var embedDim: Int { core.shape.embedDim }
    public var depth: Int { core.shape.depth }
    public var numHeads: Int { core.shape.numHeads }
    public var mlpHidden: Int { core.shape.mlpHidden }
    public var layerNormEps: Float { core.shape.lnEps }
    public var source: Source {
        switch core.source {
        case .model: return .model
        case .checkpoint: return .checkpoint
        case .official: return .official
        case .huggingFace: return .huggingFace
        case .timm: return .timm
        }
    }
    /// Which encoder of a training run these weights are; nil when the file does not say
    /// (Hugging Face and timm releases hold the official checkpoints' context encoder).
    public var trainedAs: Model.Encoder? { core.which.map { $0 == .target ? .target : .context } }
    /// Threads of the kernels (always >= 1).
    public var nThreads: Int { core.nThreads }

    /// Sets the threads: <= 0 means all cores; more than 1024 is `.invalidArgument`.
    public func setThreads(_ n: Int) throws(IJEPAError) {
        let c = core
        try engine { try c.setThreads(n) }
    }

    public var description: String {
        "Encoder(\(source), \(embedDim) x \(depth), \(numHeads) heads, \(imageSize) px / \(patchSize))"
    }

    /// Tokens per image of height × width pixels (whole patches).
    public func numTokens(height: Int, width: Int) throws(IJEPAError) -> Int {
        let c = core
        return try engine { try c.numTokens(height: height, width: width) }
    }

    /// Mean-pooled features (the paper's evaluation feature): `batch * embedDim` floats.
    public func encode(images: [Float], batch: Int, height: Int? = nil, width: Int? = nil) throws(IJEPAError) -> [Float] {
        try run(images, batch, height, width, tokens: false)
    }

    /// Token features after the final norm: `batch * numTokens * embedDim` floats.
    public func encodeTokens(images: [Float], batch: Int, height: Int? = nil, width: Int? = nil) throws(IJEPAError) -> [Float] {
        try run(images, batch, height, width, tokens: true)
    }

    /// Features of the last `lastK` blocks, each through the final norm and averaged:
    /// `batch * lastK * embedDim` floats, earliest block first.
    public func encodeLayers(images: [Float], batch: Int, lastK: Int, height: Int? = nil, width: Int? = nil)
        throws(IJEPAError) -> [Float]
    {
        let (h, w) = (height ?? imageSize, width ?? imageSize)
        try IJEPACore.Model.checkLastK(lastK, depth: depth)   // before the output is allocated
        var out = [Float](repeating: 0, count: try checkedCount(images, batch, h, w, perImage: lastK * embedDim))
        let c = core
        try withImages(images) { (p) throws(IJEPAError) in
            try engine {
                try out.withUnsafeMutableBufferPointer { o in
                    try c.encodeLayers(images: p.baseAddress!, batch: batch, height: h, width: w, lastK: lastK,
                                       pooled: o.baseAddress!)
                }
            }
        }
        return out
    }

    /// Checks the batch, the size and the image count; returns the output's float count for
    /// `perImage` floats per image.
    private func checkedCount(_ images: [Float], _ batch: Int, _ h: Int, _ w: Int, perImage: Int) throws(IJEPAError) -> Int {
        try Model.checkBatch(batch)
        _ = try numTokens(height: h, width: w)
        let (expected, overflow) = batch.multipliedReportingOverflow(by: inChans * h * w)
        guard !overflow, images.count == expected else {
            throw IJEPAError.shape("images has \(images.count) floats, expected batch*inChans*height*width = \(batch)*\(inChans)*\(h)*\(w)")
        }
        return batch * perImage
    }

    private func run(_ images: [Float], _ batch: Int, _ height: Int?, _ width: Int?, tokens: Bool) throws(IJEPAError) -> [Float] {
        let (h, w) = (height ?? imageSize, width ?? imageSize)
        let n = try numTokens(height: h, width: w)
        var out = [Float](repeating: 0, count: try checkedCount(images, batch, h, w, perImage: (tokens ? n : 1) * embedDim))
        let c = core
        try withImages(images) { (p) throws(IJEPAError) in
            try engine {
                try out.withUnsafeMutableBufferPointer { o in
                    try c.encode(images: p.baseAddress!, batch: batch, height: h, width: w,
                                 tokens: tokens ? o.baseAddress : nil, pooled: tokens ? nil : o.baseAddress)
                }
            }
        }
        return out
    }
}

/// Preprocessing of a decoded image as torchvision's Resize(resize) + CenterCrop(crop) +
/// ToTensor + Normalize(mean, std) on a PIL image (antialiased bilinear resize, in float: within
/// 1/255 of PIL's uint8 result before normalization).
public struct ImagePreprocess: Sendable, Hashable {
    /// The shorter side after the resize (0: no resize); the crop's side; per-channel mean and
    /// std on values scaled to [0, 1].
    public var resize: Int
    public var crop: Int
    public var mean: [Float]
    public var std: [Float]

    /// The ImageNet evaluation transform for crop × crop models: resize crop·8/7 (256 for 224),
    /// ImageNet mean and std.
    public init(crop: Int) {
        let d = Preprocess(crop: crop)
        (resize, self.crop) = (d.resize, d.crop)
        mean = [d.mean.0, d.mean.1, d.mean.2]
        std = [d.std.0, d.std.1, d.std.2]
    }

    /// rgb: height × width × 3 bytes, rows contiguous. Returns 3 × crop × crop floats (CHW).
    public func callAsFunction(rgb: [UInt8], height: Int, width: Int) throws(IJEPAError) -> [Float] {
        guard mean.count == 3, std.count == 3 else { throw IJEPAError.invalidArgument("mean and std need 3 values each") }
        let (n, o) = height.multipliedReportingOverflow(by: width)
        guard !o, height >= 1, width >= 1, rgb.count == n &* 3 else {
            throw IJEPAError.shape("rgb has \(rgb.count) bytes, expected height*width*3 = \(height)*\(width)*3")
        }
        var p = Preprocess(crop: crop)
        p.resize = resize
        p.mean = (mean[0], mean[1], mean[2])
        p.std = (std[0], std[1], std[2])
        try p.validate(height: height, width: width)
        var out = [Float](repeating: 0, count: 3 * crop * crop)
        let pre = p
        try engine {
            try rgb.withUnsafeBufferPointer { r in
                try out.withUnsafeMutableBufferPointer { o in try pre.apply(r.baseAddress!, height: height, width: width, into: o.baseAddress!) }
            }
        }
        return out
    }
}
