/// The patch grid of one encode call: images of height × width pixels, gh × gw whole patches
/// (the pixels past the last whole patch are dropped, as the stride-p convolution drops them).
struct PatchGrid: Equatable {
    let height: Int, width: Int, gh: Int, gw: Int
    var tokens: Int { gh * gw }

    init(height: Int, width: Int, patch: Int) {
        (self.height, self.width) = (height, width)
        (gh, gw) = (height / patch, width / patch)
    }
}

/// The no-gradient pass of a ViT encoder over whole images, shared by the training model (its
/// target-encoder pass and encode) and the inference-only Encoder:
///   x = patches · Wpatchᵀ + b + pos            [B·n, D]
///   x = blocks(x)                              [B·n, D]   (one layer of scratch per thread)
///   tokens = final_norm(x)                     [B·n, D]   or, per layer, mean(final_norm(x))
/// Buffers are borrowed from the owner, so the training model's target pass and its encode
/// share one set.
final class EncodePass {
    let stack: TransformerStack
    /// The weights' block linears are packed (PackedWeights; an inference encoder's own).
    var packedWeights = false
    /// Patch rows [B·n, C·p·p]; final-norm outputs [B·n, D]; pooling scratch.
    let cols: FloatBuffer, out: FloatBuffer, scratch: FloatBuffer

    init(stack: TransformerStack = TransformerStack(), cols: FloatBuffer = FloatBuffer(),
         out: FloatBuffer = FloatBuffer(), scratch: FloatBuffer = FloatBuffer()) {
        (self.stack, self.cols, self.out, self.scratch) = (stack, cols, out, scratch)
    }

    /// Lays out the stack for B images of grid g and writes its input rows [B·n, D]: the patch
    /// embedding of every patch plus pos [n, D]. Returns the input rows.
    func embed(_ images: CFPtr, batch B: Int, grid g: PatchGrid, shape s: EncoderShape, weights w: CFPtr,
               offsets E: EncoderOffsets, pos: CFPtr, _ ex: Exec) throws -> FPtr {
        let n = g.tokens, D = s.embedDim, P = s.patchDim
        stack.lnEps = s.lnEps
        try stack.prepare(StackShape(S: B, T: n, W: D, H: s.numHeads, hidden: s.mlpHidden, depth: s.depth),
                          training: false, threads: ex.threads, packedWeights: packedWeights)
        let c = try cols.ensure(B * n * P)
        gatherPatches(c, images, rows: B * n, imageIndex: { $0 / n }, patchIndex: { $0 % n },
                      C: s.inChans, height: g.height, width: g.width, patch: s.patchSize)
        let x = stack.input
        linearForward(x, c, w + E.patchW, w + E.patchB, B * n, P, D, ex)
        for b in 0..<B {
            let xb = x + b * n * D
            for i in 0..<(n * D) { xb[i] += pos[i] }
        }
        return x
    }

    /// Tokens after the final norm, [B·n, D], written to dst (nil: the pass's `out` buffer).
    func tokens(_ images: CFPtr, batch B: Int, grid g: PatchGrid, shape s: EncoderShape, weights w: CFPtr,
                offsets E: EncoderOffsets, pos: CFPtr, into dst: FPtr? = nil, _ ex: Exec) throws -> FPtr {
        let x = try embed(images, batch: B, grid: g, shape: s, weights: w, offsets: E, pos: pos, ex)
        stack.forwardInference(params: w, blocks: E.blocks, ex)
        let rows = B * g.tokens, D = s.embedDim
        let o = try dst ?? out.ensure(rows * D)
        layerNormForward(o, nil, nil, x, w + E.normW, w + E.normB, rows, D, s.lnEps, ex)
        return o
    }

    /// pooled [B, D] = the mean of each image's n token rows, summed in float64.
    func meanPool(_ tokens: CFPtr, batch B: Int, tokens n: Int, dim D: Int, into pooled: FPtr) throws {
        let acc = UnsafeMutableRawPointer(try scratch.ensure(2 * D)).assumingMemoryBound(to: Double.self)
        for b in 0..<B {
            let dst = pooled + b * D
            acc.update(repeating: 0, count: D)
            for t in 0..<n {
                let row = tokens + (b * n + t) * D
                for i in 0..<D { acc[i] += Double(row[i]) }
            }
            for i in 0..<D { dst[i] = Float(acc[i] / Double(n)) }
        }
    }

    /// Evaluation features of the last `lastK` blocks: each block's output through the final
    /// norm, averaged over the n tokens; pooled [B, lastK, D], earliest block first. lastK = 1
    /// gives meanPool(tokens(…)) bit for bit. Throws .numeric when a normed value is not finite.
    func layers(_ images: CFPtr, batch B: Int, grid g: PatchGrid, shape s: EncoderShape, weights w: CFPtr,
                offsets E: EncoderOffsets, pos: CFPtr, lastK: Int, into pooled: FPtr, _ ex: Exec) throws {
        let n = g.tokens, D = s.embedDim
        _ = try embed(images, batch: B, grid: g, shape: s, weights: w, offsets: E, pos: pos, ex)
        // per worker: the chunk's normed rows, then one image's float64 sums
        let perWorker = stack.chunkRows * D + 2 * D
        let scratchBase = try scratch.ensure(ex.threads * perWorker)
        let badFlag = UnsafeMutablePointer<Bool>.allocate(capacity: ex.threads)
        defer { badFlag.deallocate() }
        badFlag.initialize(repeating: false, count: ex.threads)
        struct Pool: LayerTap {
            let first: Int, lastK: Int, N: Int, D: Int, chunkRows: Int, perWorker: Int, eps: Float
            let scratch: FPtr, normW: CFPtr, normB: CFPtr, pooled: FPtr, badFlag: UnsafeMutablePointer<Bool>
            func callAsFunction(_ layer: Int, _ s0: Int, _ count: Int, _ rows: CFPtr, _ worker: Int) {
                guard layer >= first else { return }
                let ln = scratch + worker * perWorker
                let acc = UnsafeMutableRawPointer(ln + chunkRows * D).assumingMemoryBound(to: Double.self)
                layerNormForward(ln, nil, nil, rows, normW, normB, count * N, D, eps, .serial)
                for i in 0..<(count * N * D) where !ln[i].isFinite { badFlag[worker] = true; break }
                for k in 0..<count {
                    for i in 0..<D { acc[i] = 0 }
                    for t in 0..<N {
                        let row = ln + (k * N + t) * D
                        for i in 0..<D { acc[i] += Double(row[i]) }
                    }
                    let dst = pooled + ((s0 + k) * lastK + (layer - first)) * D
                    for i in 0..<D { dst[i] = Float(acc[i] / Double(N)) }
                }
            }
        }
        stack.forwardInference(params: w, blocks: E.blocks, ex,
                               tap: Pool(first: s.depth - lastK, lastK: lastK, N: n, D: D, chunkRows: stack.chunkRows,
                                         perWorker: perWorker, eps: s.lnEps, scratch: scratchBase, normW: w + E.normW,
                                         normB: w + E.normB, pooled: pooled, badFlag: badFlag))
        if (0..<ex.threads).contains(where: { badFlag[$0] }) {
            throw IJEPAError.numeric("the encoder outputs contain NaN or Inf (are the weights finite?)")
        }
    }
}
