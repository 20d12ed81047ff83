/// A stack of pre-norm ViT blocks over S sequences of T tokens of width W, run for training
/// (every layer's activations kept for backward) or for inference (one layer's scratch reused).
/// Each block: x = x + proj(attn(norm1(x))); x = x + fc2(gelu(fc1(norm2(x)))). LayerNorm eps 1e-6.
/// The final norm is not part of the stack: callers apply it to the rows they need.
struct StackShape: Equatable {
    var S: Int, T: Int, W: Int, H: Int, hidden: Int, depth: Int
    var M: Int { S * T }
}

let blockLNEps: Float = 1e-6

/// Per-layer activations, carved out of one growing buffer (allocated once per shape).
struct LayerActs {
    var ln1: FPtr, ln1Mean: FPtr, ln1Rstd: FPtr, qkv: FPtr, probs: FPtr, attn: FPtr, res1: FPtr
    var ln2: FPtr, ln2Mean: FPtr, ln2Rstd: FPtr, fc1: FPtr, gelu: FPtr, out: FPtr
}

final class TransformerStack {
    private let store = FloatBuffer()
    private let grads = FloatBuffer()
    private(set) var shape = StackShape(S: 0, T: 0, W: 0, H: 1, hidden: 0, depth: 0)
    private(set) var layers: [LayerActs] = []
    /// Input rows [M, W]: the caller writes the stack's input here before `forward`.
    private(set) var input: FPtr
    // backward scratch
    private var dres: FPtr, dln: FPtr, dattn: FPtr, dqkv: FPtr, dfc1: FPtr, dgelu: FPtr, dprobs: FPtr

    init() {
        let p = store.ptr
        (input, dres, dln, dattn, dqkv, dfc1, dgelu, dprobs) = (p, p, p, p, p, p, p, p)
    }

    static func floatsPerLayer(_ s: StackShape) -> Int {
        s.M * (8 * s.W + 2 * s.hidden + 4) + s.S * s.H * s.T * s.T
    }

    static func trainingFloats(_ s: StackShape, threads: Int) -> Int {
        s.M * s.W + s.depth * floatsPerLayer(s)
            + s.M * (3 * s.W + 3 * s.W + 2 * s.hidden) + 2 * threads * s.T * s.T
    }

    /// Sequences per forward task: whole sequences, about 256 rows, so that a task runs every
    /// layer of its sequences with its activations in cache and no synchronization.
    static func sequencesPerChunk(_ s: StackShape) -> Int { max(1, 256 / max(1, s.T)) }

    /// Lays out buffers for `shape`. Training keeps every layer's activations for all M rows;
    /// inference keeps one layer of scratch per thread for one chunk of sequences.
    func prepare(_ shape: StackShape, training: Bool, threads: Int) throws(IJEPAError) {
        self.shape = shape
        let M = shape.M, W = shape.W, Hd = shape.hidden
        let chunkSeqs = min(shape.S, Self.sequencesPerChunk(shape))
        let layerRows = training ? M : chunkSeqs * shape.T
        let layerSeqs = training ? shape.S : chunkSeqs
        let nLayers = training ? shape.depth : threads
        let per = Self.floatsPerLayer(StackShape(S: layerSeqs, T: shape.T, W: W, H: shape.H, hidden: Hd, depth: 1))
        var p = try store.ensure(M * W + nLayers * per)
        func take(_ n: Int) -> FPtr { let r = p; p += n; return r }
        input = take(M * W)
        layers.removeAll(keepingCapacity: true)
        let R = layerRows
        for _ in 0..<nLayers {
            layers.append(LayerActs(
                ln1: take(R * W), ln1Mean: take(R), ln1Rstd: take(R), qkv: take(3 * R * W),
                probs: take(layerSeqs * shape.H * shape.T * shape.T), attn: take(R * W), res1: take(R * W),
                ln2: take(R * W), ln2Mean: take(R), ln2Rstd: take(R), fc1: take(R * Hd), gelu: take(R * Hd),
                out: take(R * W)))
        }
        if training {
            var q = try grads.ensure(M * (3 * W + 3 * W + 2 * Hd) + 2 * threads * shape.T * shape.T)
            func takeG(_ n: Int) -> FPtr { let r = q; q += n; return r }
            dres = takeG(M * W); dln = takeG(M * W); dattn = takeG(M * W)
            dqkv = takeG(3 * M * W); dfc1 = takeG(M * Hd); dgelu = takeG(M * Hd)
            dprobs = takeG(2 * threads * shape.T * shape.T)
        }
    }

    /// Training forward: reads `input`, keeps all activations; returns the last layer's output.
    /// Sequences are independent in the forward pass: each task runs all layers on its chunk.
    @discardableResult
    func forward(params: CFPtr, blocks: [BlockOffsets], _ ex: Exec) -> FPtr {
        let s = shape
        if s.depth == 0 { return input }
        let per = Self.sequencesPerChunk(s)
        let chunks = (s.S + per - 1) / per
        let layers = self.layers, input = self.input
        ex.pool.run(tasks: chunks) { c in
            let s0 = c * per, n = min(s.S, s0 + per) - s0
            var x = CFPtr(input + s0 * s.T * s.W)
            for l in 0..<s.depth {
                let a = Self.offset(layers[l], rows: s0 * s.T, seqs: s0, s)
                self.blockForward(a, x: x, S: n, params: params, blocks[l], keep: true)
                x = CFPtr(a.out)
            }
        }
        return layers[s.depth - 1].out
    }

    /// The activation pointers of `a` moved to row `rows` (sequence `seqs`).
    static func offset(_ a: LayerActs, rows r: Int, seqs q: Int, _ s: StackShape) -> LayerActs {
        let W = s.W, Hd = s.hidden
        return LayerActs(ln1: a.ln1 + r * W, ln1Mean: a.ln1Mean + r, ln1Rstd: a.ln1Rstd + r, qkv: a.qkv + r * 3 * W,
                         probs: a.probs + q * s.H * s.T * s.T, attn: a.attn + r * W, res1: a.res1 + r * W,
                         ln2: a.ln2 + r * W, ln2Mean: a.ln2Mean + r, ln2Rstd: a.ln2Rstd + r,
                         fc1: a.fc1 + r * Hd, gelu: a.gelu + r * Hd, out: a.out + r * W)
    }

    /// One block on S sequences (single-threaded; the caller parallelizes over chunks).
    /// keep: write res1/out into `a` (training); otherwise update x in place (inference).
    private func blockForward(_ a: LayerActs, x: CFPtr, S: Int, params w: CFPtr, _ o: BlockOffsets, keep: Bool) {
        let s = shape, M = S * s.T, W = s.W, Hd = s.hidden, ex = Exec.serial
        layerNormForward(a.ln1, a.ln1Mean, a.ln1Rstd, x, w + o.norm1W, w + o.norm1B, M, W, blockLNEps, ex)
        linearForward(a.qkv, a.ln1, w + o.qkvW, w + o.qkvB, M, W, 3 * W, ex)
        attentionForward(a.attn, a.probs, a.qkv, S, s.T, W, s.H, ex)
        let r1 = keep ? a.res1 : FPtr(mutating: x)
        if keep { r1.update(from: x, count: M * W) }
        linearForward(r1, a.attn, w + o.projW, w + o.projB, M, W, W, accumulate: true, ex)
        layerNormForward(a.ln2, a.ln2Mean, a.ln2Rstd, r1, w + o.norm2W, w + o.norm2B, M, W, blockLNEps, ex)
        linearForward(a.fc1, a.ln2, w + o.fc1W, w + o.fc1B, M, W, Hd, ex)
        geluForward(a.gelu, a.fc1, M * Hd, ex)
        let out = keep ? a.out : r1
        if keep { out.update(from: r1, count: M * W) }
        linearForward(out, a.gelu, w + o.fc2W, w + o.fc2B, M, Hd, W, accumulate: true, ex)
    }

    /// Inference forward in place on `input`; each task runs all layers on a chunk of
    /// sequences with its thread's scratch; returns `input`.
    @discardableResult
    func forwardInference(params w: CFPtr, blocks: [BlockOffsets], _ ex: Exec) -> FPtr {
        let s = shape
        let per = min(s.S, Self.sequencesPerChunk(s))
        let chunks = (s.S + per - 1) / per
        let layers = self.layers, input = self.input
        ex.pool.run(tasks: chunks) { c, worker in
            let s0 = c * per, n = min(s.S, s0 + per) - s0
            let x = input + s0 * s.T * s.W
            let a = layers[worker]
            for l in 0..<s.depth { self.blockForward(a, x: x, S: n, params: w, blocks[l], keep: false) }
        }
        return input
    }

    /// Backward through all blocks. `dout` [M, W] is the gradient of the last output; returns the
    /// gradient of `input` (a scratch pointer valid until the next call). Param grads accumulate.
    func backward(dout: CFPtr, params w: CFPtr, grads g: FPtr, blocks: [BlockOffsets], _ ex: Exec) throws(IJEPAError) -> FPtr {
        let s = shape, M = s.M, W = s.W, Hd = s.hidden
        dres.update(from: dout, count: M * W)
        for l in stride(from: s.depth - 1, through: 0, by: -1) {
            let a = layers[l], o = blocks[l]
            let xin = l == 0 ? CFPtr(input) : CFPtr(layers[l - 1].out)
            // MLP branch: out = res1 + fc2(gelu(fc1(ln2(res1))))
            linearBackward(dgelu, g + o.fc2W, g + o.fc2B, dres, a.gelu, w + o.fc2W, M, Hd, W, ex)
            geluBackward(dfc1, dgelu, a.fc1, M * Hd, ex)
            linearBackward(dln, g + o.fc1W, g + o.fc1B, dfc1, a.ln2, w + o.fc1W, M, W, Hd, ex)
            try layerNormBackward(dres, g + o.norm2W, g + o.norm2B, dln, a.res1, a.ln2Mean, a.ln2Rstd,
                              w + o.norm2W, M, W, accumulate: true, ex)
            // attention branch: res1 = x + proj(attn(ln1(x)))
            linearBackward(dattn, g + o.projW, g + o.projB, dres, a.attn, w + o.projW, M, W, W, ex)
            attentionBackward(dqkv, dprobs, dattn, a.qkv, a.probs, s.S, s.T, W, s.H, ex)
            linearBackward(dln, g + o.qkvW, g + o.qkvB, dqkv, a.ln1, w + o.qkvW, M, W, 3 * W, ex)
            try layerNormBackward(dres, g + o.norm1W, g + o.norm1B, dln, xin, a.ln1Mean, a.ln1Rstd,
                              w + o.norm1W, M, W, accumulate: true, ex)
        }
        return dres
    }
}
