// Encoding full images with a training model's target or context encoder (the no-gradient pass
// of EncodePass on the model's buffers).
extension Model {
    /// The patch grid of the model's full images.
    var fullImages: PatchGrid { PatchGrid(height: config.imageSize, width: config.imageSize, patch: config.patchSize) }

    /// Lays out the target stack for inference on B full images and writes its input: patch
    /// embedding of all N patches plus the position table. Returns the input rows [B*N, D].
    func embedFullImages(images: UnsafePointer<Float>, batch B: Int, weights w: CFPtr) throws -> FPtr {
        let c = config
        return try posEmbed.withUnsafeBufferPointer { pe in
            try encodePass.embed(images, batch: B, grid: fullImages,
                                 shape: c.encoderShape, weights: w, offsets: layout.encoder, pos: pe.baseAddress!, exec)
        }
    }

    /// Encodes full images with the target or context encoder. tokens: [B, N, D] (or nil);
    /// pooled: [B, D] mean over the N tokens (or nil).
    public func encode(images: UnsafePointer<Float>, batch B: Int, encoder: EncoderKind,
                       tokens: UnsafeMutablePointer<Float>?, pooled: UnsafeMutablePointer<Float>?) throws {
        try Self.checkBatch(B)
        try checkMemory(activationFloats(batch: B, kEnc: 0, kPred: 0))
        let c = config
        try Self.checkFinite(images, B * c.inChans * c.imageSize * c.imageSize, "images")
        setBLASThreads()
        let w = encoder == .target ? CFPtr(target.ptr) : CFPtr(params.ptr)
        let N = c.numPatches, D = c.embedDim
        let out = try posEmbed.withUnsafeBufferPointer { pe in
            try encodePass.tokens(images, batch: B, grid: fullImages,
                                  shape: c.encoderShape, weights: w, offsets: layout.encoder, pos: pe.baseAddress!, exec)
        }
        try Self.checkFinite(out, B * N * D, "the encoder outputs (are the weights finite?)")
        if let tokens { tokens.update(from: out, count: B * N * D) }
        if let pooled { try encodePass.meanPool(out, batch: B, tokens: N, dim: D, into: pooled) }
    }

    /// Evaluation features of the last `lastK` blocks: each block's output through the encoder's
    /// final norm, averaged over the N tokens; pooled [B, lastK, D], earliest block first.
    /// lastK = 1 gives `encode`'s pooled output bit for bit.
    public func encodeLayers(images: UnsafePointer<Float>, batch B: Int, encoder: EncoderKind, lastK: Int,
                             pooled: UnsafeMutablePointer<Float>) throws {
        let c = config
        try Self.checkBatch(B)
        try Self.checkLastK(lastK, depth: c.depth)
        try checkMemory(activationFloats(batch: B, kEnc: 0, kPred: 0))
        try Self.checkFinite(images, B * c.inChans * c.imageSize * c.imageSize, "images")
        setBLASThreads()
        let w = encoder == .target ? CFPtr(target.ptr) : CFPtr(params.ptr)
        try posEmbed.withUnsafeBufferPointer { pe in
            try encodePass.layers(images, batch: B, grid: fullImages,
                                  shape: c.encoderShape, weights: w, offsets: layout.encoder, pos: pe.baseAddress!,
                                  lastK: lastK, into: pooled, exec)
        }
    }
}
