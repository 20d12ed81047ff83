import COpenBLAS

/// Where an encoder's weights came from (IJEPA_SOURCE_* in include/ijepa.h).
public enum EncoderSource: Int, Sendable {
    case model = 0, checkpoint = 1, official = 2, huggingFace = 3, timm = 4

    public var name: String {
        switch self {
        case .model: return "a training model"
        case .checkpoint: return "a libijepa checkpoint"
        case .official: return "official I-JEPA names"
        case .huggingFace: return "a Hugging Face IJepaModel"
        case .timm: return "a timm VisionTransformer"
        }
    }
}

/// How the position table is resized for another patch grid (IJEPA_POS_* in include/ijepa.h).
public enum PosInterpolation: Int, Sendable {
    case auto = 0, bicubic = 1, bicubicAntialiased = 2

    /// The filter for weights from `source`: timm resamples with antialias, everyone else without.
    func resolved(for source: EncoderSource) -> PosInterpolation {
        self != .auto ? self : (source == .timm ? .bicubicAntialiased : .bicubic)
    }

    var filter: ResampleFilter { self == .bicubicAntialiased ? .bicubicAntialiased : .bicubic }
}

/// One ViT encoder for inference: its weights in one flat float32 block (the layout of a
/// training model's encoder part, official names), its position table, and the scratch of the
/// batch being encoded — no gradients, optimizer state, predictor or mask config. Used by one
/// thread at a time.
public final class ViTEncoder {
    public let shape: EncoderShape
    /// Side of the (square) patch grid of the position table.
    public let grid: Int
    public let source: EncoderSource
    /// Which encoder of a training run these are; nil when the source does not say.
    public let which: EncoderKind?
    /// Resolved: .bicubic or .bicubicAntialiased.
    public let posInterpolation: PosInterpolation
    public let layout: ParamLayout
    public let weights: FloatBuffer
    /// [grid·grid, D].
    public let pos: FloatBuffer
    public private(set) var exec: Exec
    let pass = EncodePass()
    /// The position table resized for the last other grid asked for.
    private var resized: (gh: Int, gw: Int, table: FloatBuffer)?

    /// Images per forward chunk are chosen so that a chunk has about this many token rows: the
    /// activations stay bounded whatever the batch.
    static let chunkRowTarget = 2048

    /// An encoder whose weights and position table the caller fills (loaders, copies).
    /// storage: the weights and position table already in place (a mapped encoder file).
    init(shape: EncoderShape, grid: Int, source: EncoderSource, which: EncoderKind?, posInterpolation: PosInterpolation,
         threads: Int, storage: (weights: FloatBuffer, pos: FloatBuffer)? = nil) throws {
        try Self.validate(shape, grid: grid)
        self.shape = shape
        self.grid = grid
        self.source = source
        self.which = which
        self.posInterpolation = posInterpolation.resolved(for: source)
        layout = ParamLayout(encoder: shape)
        let floats = Double(layout.totalCount + grid * grid * shape.embedDim)
        if floats * 4 > Exec.availableMemory * 0.9 {
            throw IJEPAError.outOfMemory("the encoder needs \(Int(floats * 4 / 1_048_576)) MiB for its weights, more than this machine has available")
        }
        if let storage {
            guard storage.weights.capacity == layout.totalCount, storage.pos.capacity == grid * grid * shape.embedDim else {
                throw IJEPAError.internalError("mapped weights do not match the encoder's layout")
            }
            (weights, pos) = storage
        } else {
            weights = try FloatBuffer(count: layout.totalCount)
            pos = try FloatBuffer(count: grid * grid * shape.embedDim)
        }
        weightsMapped = storage != nil
        exec = Exec(threads: try Exec.threads(threads))
    }

    /// A copy of a training model's target or context encoder (later steps do not change it).
    public convenience init(copying model: Model, _ which: EncoderKind) throws {
        let c = model.config
        try self.init(shape: c.encoderShape, grid: c.gridSize, source: .model, which: which, posInterpolation: .auto,
                      threads: model.nThreads)
        weights.ptr.update(from: which == .target ? model.target.ptr : model.params.ptr, count: layout.totalCount)
        pos.ptr.update(from: model.posEmbed, count: model.posEmbed.count)
        packWeights()
    }

    /// Packs the block linears for the inference products where they apply (PackedWeights);
    /// called once, when the weights are in place. alreadyPacked: they came packed (an encoder
    /// file), and the products run on the packed kernels on any CPU.
    func packWeights(alreadyPacked: Bool = false) {
        pass.packedWeights = alreadyPacked
            || PackedWeights.applies(to: shape) && PackedWeights.pack(weights.ptr, layout.encoder.blocks, shape, exec)
    }

    /// Whether the weights are the pages of a mapped encoder file (ijepa_encoder_save's format)
    /// rather than memory of their own.
    public let weightsMapped: Bool

    /// Whether the block linears are packed (the products run on CIJEPAKernels, not BLAS).
    public var packedWeights: Bool { pass.packedWeights }

    /// Sizes every kernel can run: positive, heads dividing the width, and small enough that
    /// no size computation overflows.
    static func validate(_ s: EncoderShape, grid: Int) throws {
        func check(_ ok: Bool, _ m: @autoclosure () -> String) throws { if !ok { throw IJEPAError.format(m()) } }
        try check(s.patchSize >= 1 && s.patchSize <= 1024, "patch size \(s.patchSize) must be in 1...1024")
        try check(s.inChans >= 1 && s.inChans <= 64, "input channels \(s.inChans) must be in 1...64")
        try check(s.embedDim >= 1 && s.embedDim <= 65536, "width \(s.embedDim) must be in 1...65536")
        try check(s.depth >= 1 && s.depth <= 1024, "depth \(s.depth) must be in 1...1024")
        try check(s.mlpHidden >= 1 && s.mlpHidden <= 1 << 18, "MLP width \(s.mlpHidden) must be in 1...262144")
        try check(s.numHeads >= 1 && s.embedDim % s.numHeads == 0,
                  "\(s.numHeads) heads do not divide the width \(s.embedDim)")
        try check(grid >= 1 && grid <= 1024, "position grid \(grid) must be in 1...1024")
        try check(s.lnEps.isFinite && s.lnEps > 0 && s.lnEps < 1, "LayerNorm eps \(s.lnEps) must be in (0, 1)")
    }

    public var imageSize: Int { grid * shape.patchSize }

    /// Threads of this encoder's kernels (values <= 0 mean all cores; at most 1024).
    public var nThreads: Int { exec.threads }

    /// Sets the threads of this encoder's kernels (Exec.threads' rule).
    public func setThreads(_ n: Int) throws(IJEPAError) { exec = Exec(threads: try Exec.threads(n)) }

    /// Tokens of an image of height × width pixels: whole patches only.
    public func numTokens(height: Int, width: Int) throws -> Int {
        let p = shape.patchSize
        if height < p || width < p {
            throw IJEPAError.shape("an image of \(height)x\(width) pixels is smaller than one \(p)x\(p) patch")
        }
        let n = height <= 1 << 20 && width <= 1 << 20 ? (height / p) * (width / p) : Int.max
        if n > 1 << 24 {
            throw IJEPAError.shape("an image of \(height)x\(width) pixels has too many \(p)x\(p) patches (at most 2^24 tokens)")
        }
        return n
    }

    /// The position table for grid g: the weights' own, or resized (cached for the next call).
    private func positions(for g: PatchGrid) throws -> CFPtr {
        if g.gh == grid && g.gw == grid { return CFPtr(pos.ptr) }
        if let r = resized, r.gh == g.gh, r.gw == g.gw { return CFPtr(r.table.ptr) }
        try checkScratch(resampleScratchBytes(inH: grid, inW: grid, channels: shape.embedDim, outH: g.gh, outW: g.gw,
                                              posInterpolation.filter), "resizing the position table to \(g.gh)x\(g.gw)")
        let table = try FloatBuffer(count: g.tokens * shape.embedDim)
        resampleGrid(pos.ptr, inH: grid, inW: grid, channels: shape.embedDim, to: table.ptr, outH: g.gh, outW: g.gw,
                     posInterpolation.filter)
        resized = (g.gh, g.gw, table)
        return CFPtr(table.ptr)
    }

    /// Images per chunk for n tokens each, after checking that a chunk's activations fit.
    private func chunkImages(tokens n: Int, batch: Int) throws -> Int {
        let per = max(1, min(batch, Self.chunkRowTarget / n))
        // input, patch rows and outputs for the chunk, plus each thread's layer scratch for its
        // share of the images (the stack runs one chunk of whole images per thread; attention
        // probabilities H·n² per image dominate for large images) and its packed products' scratch
        let s = shape, D = s.embedDim
        let rows = Double(per * n), image = Double(n)
        let imagesPerThread = Double(max(1, (per + exec.threads - 1) / exec.threads))
        let floats = rows * Double(2 * D + s.patchDim)
            + Double(exec.threads) * (imagesPerThread * image * (Double(8 * D + 2 * s.mlpHidden + 4) + Double(s.numHeads) * image)
                                      + Double(packedWeights ? PackScratch.floatsPerPart : 0))
            + Double(n * D)
        if floats * 4 > Exec.availableMemory * 0.9 || floats > Double(Int.max / 8) {
            throw IJEPAError.outOfMemory("encoding images of \(n) tokens needs about \(Int(floats * 4 / 1_048_576)) MiB of activations, more than is available; use smaller images or fewer threads")
        }
        return per
    }

    private func check(images: UnsafePointer<Float>, batch: Int, height: Int, width: Int) throws -> PatchGrid {
        try Model.checkBatch(batch)
        _ = try numTokens(height: height, width: width)
        let (n, o) = (batch * shape.inChans).multipliedReportingOverflow(by: height * width)
        if o || n > 1 << 40 { throw IJEPAError.shape("a batch of \(batch) images of \(shape.inChans)x\(height)x\(width) is too large") }
        try Model.checkFinite(images, n, "images")
        openblas_set_num_threads(1)   // (process-wide: BLAS runs single-threaded inside our pool)
        return PatchGrid(height: height, width: width, patch: shape.patchSize)
    }

    /// Checks the call, then runs `body(firstImage, images, grid, positionTable)` over chunks of
    /// the batch whose activations fit (see chunkImages).
    private func inChunks(_ images: UnsafePointer<Float>, batch: Int, height: Int, width: Int,
                          _ body: (Int, Int, PatchGrid, CFPtr) throws -> Void) throws {
        let g = try check(images: images, batch: batch, height: height, width: width)
        let per = try chunkImages(tokens: g.tokens, batch: batch)
        let table = try positions(for: g)
        var b0 = 0
        while b0 < batch {
            let B = min(per, batch - b0)
            try body(b0, B, g, table)
            b0 += B
        }
    }

    /// Encodes float32 NCHW images [batch, C, height, width]. tokens [batch, n, D] after the
    /// final norm (or nil); pooled [batch, D], their mean (or nil). Batches run in chunks.
    public func encode(images: UnsafePointer<Float>, batch: Int, height: Int, width: Int,
                       tokens: UnsafeMutablePointer<Float>?, pooled: UnsafeMutablePointer<Float>?) throws {
        let D = shape.embedDim, perImage = shape.inChans * height * width
        try inChunks(images, batch: batch, height: height, width: width) { b0, B, g, table in
            let n = g.tokens
            let out = try pass.tokens(images + b0 * perImage, batch: B, grid: g, shape: shape, weights: weights.ptr,
                                      offsets: layout.encoder, pos: table, into: tokens.map { $0 + b0 * n * D }, exec)
            try Model.checkFinite(out, B * n * D, "the encoder outputs (are the weights finite?)")
            if let pooled { try pass.meanPool(out, batch: B, tokens: n, dim: D, into: pooled + b0 * D) }
        }
    }

    /// Features of the last `lastK` blocks, [batch, lastK, D] (see EncodePass.layers).
    public func encodeLayers(images: UnsafePointer<Float>, batch: Int, height: Int, width: Int, lastK: Int,
                             pooled: UnsafeMutablePointer<Float>) throws {
        try Model.checkLastK(lastK, depth: shape.depth)
        let D = shape.embedDim, perImage = shape.inChans * height * width
        try inChunks(images, batch: batch, height: height, width: width) { b0, B, g, table in
            try pass.layers(images + b0 * perImage, batch: B, grid: g, shape: shape, weights: weights.ptr,
                            offsets: layout.encoder, pos: table, lastK: lastK, into: pooled + b0 * lastK * D, exec)
        }
    }
}
