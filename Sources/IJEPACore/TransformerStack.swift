/// A stack of pre-norm ViT blocks over S sequences of width W, run for training (every layer's
/// activations kept for backward) or for inference (one layer's scratch reused). Sequences are
/// T tokens each, or of their own lengths (ragged contexts): their rows are concatenated without
/// padding, so only attention sees sequence boundaries.
/// Each block: x = x + proj(attn(norm1(x))); x = x + fc2(gelu(fc1(norm2(x)))). LayerNorm eps 1e-6.
/// The final norm is not part of the stack: callers apply it to the rows they need.
/// A training stack can be told that only the last k rows of each sequence are outputs (the
/// predictor, whose outputs are its mask tokens): its last layer then takes queries, the
/// projection and the MLP on those rows only (every row is still a key and value) and its output
/// is compact, k rows per sequence — the same numbers as the full layer's rows, with the work of
/// the other rows skipped.
struct StackShape: Equatable {
    /// S sequences of (at most, when ragged) T tokens.
    var S: Int, T: Int, W: Int, H: Int, hidden: Int, depth: Int
}

/// The official LayerNorm eps of every block and the final norm.
public let blockLNEps: Float = 1e-6

/// Called by forwardInference after each layer with a chunk's rows (see there).
protocol LayerTap {
    func callAsFunction(_ layer: Int, _ seq: Int, _ count: Int, _ rows: CFPtr, _ worker: Int)
}

struct NoTap: LayerTap {
    @inline(__always) func callAsFunction(_: Int, _: Int, _: Int, _: CFPtr, _: Int) {}
}

/// One chunk of sequences through all layers in place (TransformerStack.forwardInference).
struct InferenceTask<Tap: LayerTap>: PoolTask {
    let stack: TransformerStack, params: CFPtr, blocks: [BlockOffsets], tap: Tap
    func callAsFunction(_ c: Int, _ worker: Int) {
        let st = stack
        let s0 = st.chunkSeq[c], n = st.chunkSeq[c + 1] - s0
        let x = st.input + st.rowOff[s0] * st.shape.W
        let a = st.layers[worker]
        for l in 0..<st.shape.depth {
            st.blockForward(a, x: x, seq: s0, count: n, params: params, blocks[l], keep: false)
            tap(l, s0, n, x, worker)
        }
    }
}

/// One chunk of sequences through all layers, the last one on selected rows only
/// (TransformerStack.forwardInferenceSelected).
struct InferenceSelectedTask: PoolTask {
    let stack: TransformerStack, params: CFPtr, blocks: [BlockOffsets]
    let selOff: UnsafePointer<Int>, selRows: UnsafePointer<Int32>, out: FPtr
    func callAsFunction(_ c: Int, _ worker: Int) {
        let st = stack, d = st.shape.depth
        let s0 = st.chunkSeq[c], n = st.chunkSeq[c + 1] - s0
        let x = st.input + st.rowOff[s0] * st.shape.W
        let a = st.layers[worker]
        for l in 0..<(d - 1) {
            st.blockForward(a, x: x, seq: s0, count: n, params: params, blocks[l], keep: false)
        }
        st.blockForwardSelected(a, x: x, seq: s0, count: n, params: params, blocks[d - 1],
                                selOff: selOff, selRows: selRows, out: out)
    }
}

/// Per-layer activations, carved out of one growing buffer (allocated once per shape). For
/// training only qkv, probs, res1, fc1, out and the LayerNorm statistics are kept per layer;
/// ln1, ln2, attn and gelu point into per-worker scratch in the forward pass and are recomputed
/// (bit-identically) in the backward pass, which saves 3W + hidden floats per row and layer
/// (about 45% of a block's activations).
struct LayerActs {
    var ln1: FPtr, ln1Mean: FPtr, ln1Rstd: FPtr, qkv: FPtr, probs: FPtr, attn: FPtr, res1: FPtr
    var ln2: FPtr, ln2Mean: FPtr, ln2Rstd: FPtr, fc1: FPtr, gelu: FPtr, out: FPtr
    /// Inference with packed block weights (PackedWeights): the products' scratch; else nil.
    var pack: PackScratch? = nil
}

final class TransformerStack {
    private let store = FloatBuffer()
    /// eps of the blocks' LayerNorms (1e-6 in the official code; pretrained files may say otherwise).
    var lnEps: Float = blockLNEps
    /// Backward scratch; the model's training stacks share one (their backward passes run one
    /// after the other), so pointers into it are taken at the start of `backward`.
    private let grads: FloatBuffer
    private(set) var shape = StackShape(S: 0, T: 0, W: 0, H: 1, hidden: 0, depth: 0)
    /// Rows of all sequences (S·T when uniform) and attention-probability floats per layer.
    private(set) var M = 0
    private var probTotal = 0
    /// Sequence s: rows rowOff[s]..<rowOff[s+1], probabilities from probOff[s]; forward chunk c:
    /// sequences chunkSeq[c]..<chunkSeq[c+1]. One allocation of 3(S+1) Ints, grown as needed.
    private var offsets = UnsafeMutablePointer<Int>.allocate(capacity: 1), offsetsCapacity = 1
    var rowOff: UnsafeMutablePointer<Int> { offsets }
    var probOff: UnsafeMutablePointer<Int> { offsets + shape.S + 1 }
    var chunkSeq: UnsafeMutablePointer<Int> { offsets + 2 * (shape.S + 1) }
    /// With an output tail: probabilities of the last layer, H·k·T_s floats per sequence.
    var probOffTail: UnsafeMutablePointer<Int> { offsets + 3 * (shape.S + 1) }
    /// Output rows per sequence of the last layer (0: all rows).
    private(set) var tail = 0
    private var nChunks = 0, chunkProbs = 0
    /// Inference runs layer by layer, each kernel on all threads (see prepare).
    private(set) var layerParallel = false
    private(set) var layers: [LayerActs] = []
    /// Input rows [M, W]: the caller writes the stack's input here before `forward`.
    private(set) var input: FPtr
    /// Training forward: per-worker scratch for ln1/ln2 and attn [chunk rows, W] each and gelu
    /// [chunk rows, hidden].
    private(set) var fwdScratch: FPtr
    /// Rows of the largest forward chunk (whole sequences, about chunkRowTarget rows).
    private(set) var chunkRows = 0
    // backward scratch: dres, dln [M,W]; lnRe [M,W] (recomputed ln1/ln2, then dattn);
    // dhid [M,hidden] (dgelu, then dfc1 in place); big [M, max(hidden, 3W)] (recomputed gelu,
    // then dqkv); dprobs
    private var dres: FPtr, dln: FPtr, lnRe: FPtr, dhid: FPtr, big: FPtr, dprobs: FPtr

    init(backwardScratch: FloatBuffer = FloatBuffer()) {
        grads = backwardScratch
        let p = store.ptr
        (input, fwdScratch, dres, dln, lnRe, dhid, big, dprobs) = (p, p, p, p, p, p, p, p)
    }

    deinit { offsets.deallocate() }

    /// Rows per forward task: whole sequences, about 512 rows, so that a task runs every layer of
    /// its sequences with its activations in cache and no synchronization.
    static let chunkRowTarget = 512

    /// Lays out buffers for `shape` (`lengths`: S per-sequence lengths, each 1...shape.T; nil =
    /// all shape.T). Training keeps every layer's activations for all M rows; inference keeps
    /// one layer of scratch per thread for one chunk of sequences. outputTail k > 0 (training
    /// only, every length ≥ k): only the last k rows of each sequence are outputs.
    /// packedWeights (inference only): the block linears' weights are packed (PackedWeights).
    func prepare(_ shape: StackShape, lengths: [Int]? = nil, training: Bool, threads: Int,
                 outputTail: Int = 0, packedWeights: Bool = false) throws(IJEPAError) {
        self.shape = shape
        let S = shape.S, W = shape.W, Hd = shape.hidden, H = shape.H
        if offsetsCapacity < 4 * (S + 1) {
            offsets.deallocate()
            offsets = .allocate(capacity: 4 * (S + 1))
            offsetsCapacity = 4 * (S + 1)
        }
        let k = training && shape.depth > 0 ? outputTail : 0
        tail = k
        let rowOff = self.rowOff, probOff = self.probOff, chunkSeq = self.chunkSeq, probOffTail = self.probOffTail
        rowOff[0] = 0; probOff[0] = 0; probOffTail[0] = 0
        for s in 0..<S {
            let t = lengths?[s] ?? shape.T
            if t < k { throw IJEPAError.internalError("a sequence of \(t) rows is shorter than its \(k) output rows") }
            rowOff[s + 1] = rowOff[s] + t
            probOff[s + 1] = probOff[s] + H * t * t
            probOffTail[s + 1] = probOffTail[s] + H * k * t
        }
        M = rowOff[S]; probTotal = probOff[S]
        let Mq = S * k, probTail = probOffTail[S]
        // chunks: add whole sequences while they fit in the chunk's rows (at least one each). The
        // rows per chunk are at most about chunkRowTarget, evened out so that the number of chunks is a
        // multiple of the threads (576 rows on 2 threads: 2 chunks of 288, not 504 + 72). Inference
        // of up to 4·chunkRowTarget rows per thread takes one chunk per thread: whole sequences
        // cut into smaller chunks would leave threads idle (10 images of 197 rows on 2 threads:
        // 2 chunks of 5, not 5 chunks of 2).
        let perThread = max(1, (M + threads - 1) / max(1, threads))
        let rounds = !training && perThread <= 4 * Self.chunkRowTarget
            ? 1 : max(1, (perThread + Self.chunkRowTarget - 1) / Self.chunkRowTarget)
        let rowLimit = max(1, (perThread + rounds - 1) / rounds)
        nChunks = 0; chunkRows = 0; chunkProbs = 0
        var s0 = 0
        while s0 < S {
            var s1 = s0 + 1
            while s1 < S && rowOff[s1 + 1] - rowOff[s0] <= rowLimit { s1 += 1 }
            chunkSeq[nChunks] = s0
            nChunks += 1
            chunkRows = max(chunkRows, rowOff[s1] - rowOff[s0])
            chunkProbs = max(chunkProbs, probOff[s1] - probOff[s0])
            s0 = s1
        }
        chunkSeq[nChunks] = S
        // inference on fewer chunks than threads (one image, say): one chunk of everything, run
        // layer by layer with every kernel split over the threads
        layerParallel = !training && threads > 1 && nChunks < threads
        if layerParallel {
            nChunks = 1; chunkSeq[1] = S
            chunkRows = rowOff[S]; chunkProbs = probOff[S]
        }
        let M = self.M
        let layerRows = training ? M : chunkRows
        let nLayers = training ? shape.depth : (layerParallel ? 1 : threads)
        // a layer: all activations (inference scratch) or the kept ones (training)
        let per = layerRows * ((training ? 5 : 8) * W + (training ? 1 : 2) * Hd + 4) + (training ? probTotal : chunkProbs)
        // the last layer with an output tail: ln1 statistics and qkv for all rows, the rest for Mq
        let tailLayer = M * (3 * W + 2) + Mq * (2 * W + Hd + 2) + probTail
        let scratch = training ? threads * chunkRows * (2 * W + Hd) : 0
        // packed products: a scratch per thread that runs a part of one (all threads when the
        // layers run on all threads, else the one running the layer)
        let packParts = !training && packedWeights ? (layerParallel ? threads : 1) : 0
        let packFloats = packParts * PackScratch.floatsPerPart
        var p = try store.ensure(M * W + (k > 0 ? (nLayers - 1) * per + tailLayer : nLayers * per) + scratch
                                 + nLayers * packFloats)
        func take(_ n: Int) -> FPtr { let r = p; p += n; return r }
        input = take(M * W)
        layers.removeAll(keepingCapacity: true)
        let R = layerRows
        for l in 0..<nLayers {
            if k > 0 && l == nLayers - 1 {
                let ln1Mean = take(M), ln1Rstd = take(M), qkv = take(3 * M * W), probs = take(probTail)
                let res1 = take(Mq * W), ln2Mean = take(Mq), ln2Rstd = take(Mq), fc1 = take(Mq * Hd)
                layers.append(LayerActs(ln1: input, ln1Mean: ln1Mean, ln1Rstd: ln1Rstd, qkv: qkv, probs: probs,
                                        attn: input, res1: res1, ln2: input, ln2Mean: ln2Mean, ln2Rstd: ln2Rstd,
                                        fc1: fc1, gelu: input, out: take(Mq * W)))
                continue
            }
            // training: ln1, ln2 and gelu get their pointers per task (forward) or are recomputed
            // (backward); `input` stands in here and is never written through them
            let ln1 = training ? input : take(R * W)
            let ln1Mean = take(R), ln1Rstd = take(R), qkv = take(3 * R * W)
            let probs = take(training ? probTotal : chunkProbs), attn = training ? input : take(R * W)
            let res1 = take(R * W)
            let ln2 = training ? input : take(R * W)
            let ln2Mean = take(R), ln2Rstd = take(R), fc1 = take(R * Hd)
            let gelu = training ? input : take(R * Hd)
            let out = take(R * W)
            layers.append(LayerActs(ln1: ln1, ln1Mean: ln1Mean, ln1Rstd: ln1Rstd, qkv: qkv, probs: probs, attn: attn,
                                    res1: res1, ln2: ln2, ln2Mean: ln2Mean, ln2Rstd: ln2Rstd, fc1: fc1, gelu: gelu,
                                    out: out, pack: packParts > 0 ? PackScratch(base: take(packFloats), parts: packParts) : nil))
        }
        if training {
            fwdScratch = take(scratch)
            backwardThreads = threads
        }
    }

    private var backwardThreads = 1

    /// Lays out the backward scratch (see `grads`) and returns where the gradient of the last
    /// layer's output [M, W] goes: the caller writes it there, then calls `backward`.
    func prepareBackward() throws(IJEPAError) -> FPtr {
        let s = shape, M = self.M, W = s.W, Hd = s.hidden
        var q = try grads.ensure(M * (3 * W + Hd + max(Hd, 3 * W)) + 2 * backwardThreads * s.T * s.T)
        func takeG(_ n: Int) -> FPtr { let r = q; q += n; return r }
        dres = takeG(M * W); dln = takeG(M * W); lnRe = takeG(M * W)
        dhid = takeG(M * Hd); big = takeG(M * max(Hd, 3 * W))
        dprobs = takeG(2 * backwardThreads * s.T * s.T)
        return dres
    }

    /// Training forward: reads `input`, keeps all activations; returns the last layer's output
    /// ([M, W], or [S·k, W] with an output tail k: sequence s's last k rows at rows s·k).
    /// Sequences are independent in the forward pass: each task runs all layers on its chunk.
    @discardableResult
    func forward(params: CFPtr, blocks: [BlockOffsets], _ ex: Exec) -> FPtr {
        if shape.depth == 0 { return input }
        struct Task: PoolTask {
            let stack: TransformerStack, params: CFPtr, blocks: [BlockOffsets]
            func callAsFunction(_ c: Int, _ worker: Int) {
                let st = stack, s = st.shape
                let s0 = st.chunkSeq[c], n = st.chunkSeq[c + 1] - s0
                var x = CFPtr(st.input + st.rowOff[s0] * s.W)
                let ln = st.fwdScratch + worker * st.chunkRows * (2 * s.W + s.hidden)
                let attn = ln + st.chunkRows * s.W, gelu = attn + st.chunkRows * s.W
                for l in 0..<s.depth {
                    let last = st.tail > 0 && l == s.depth - 1
                    var a = last ? TransformerStack.offsetTail(st.layers[l], rows: st.rowOff[s0], compact: s0 * st.tail,
                                                               probs: st.probOffTail[s0], s)
                                 : TransformerStack.offset(st.layers[l], rows: st.rowOff[s0], probs: st.probOff[s0], s)
                    a.ln1 = ln; a.ln2 = ln; a.attn = attn; a.gelu = gelu   // consumed within the block
                    st.blockForward(a, x: x, seq: s0, count: n, params: params, blocks[l], keep: true,
                                    tail: last ? st.tail : 0)
                    x = CFPtr(a.out)
                }
            }
        }
        ex.pool.run(tasks: nChunks, Task(stack: self, params: params, blocks: blocks))
        return layers[shape.depth - 1].out
    }

    /// The activation pointers of `a` moved to row `rows` (probabilities to float `probs`).
    static func offset(_ a: LayerActs, rows r: Int, probs q: Int, _ s: StackShape) -> LayerActs {
        let W = s.W, Hd = s.hidden
        return LayerActs(ln1: a.ln1 + r * W, ln1Mean: a.ln1Mean + r, ln1Rstd: a.ln1Rstd + r, qkv: a.qkv + r * 3 * W,
                         probs: a.probs + q, attn: a.attn + r * W, res1: a.res1 + r * W,
                         ln2: a.ln2 + r * W, ln2Mean: a.ln2Mean + r, ln2Rstd: a.ln2Rstd + r,
                         fc1: a.fc1 + r * Hd, gelu: a.gelu + r * Hd, out: a.out + r * W)
    }

    /// `offset` for the last layer with an output tail: ln1 statistics and qkv move to row
    /// `rows`, the tail rows' activations to compact row `compact`, probabilities to `probs`.
    static func offsetTail(_ a: LayerActs, rows r: Int, compact c: Int, probs q: Int, _ s: StackShape) -> LayerActs {
        let W = s.W, Hd = s.hidden
        return LayerActs(ln1: a.ln1, ln1Mean: a.ln1Mean + r, ln1Rstd: a.ln1Rstd + r, qkv: a.qkv + r * 3 * W,
                         probs: a.probs + q, attn: a.attn, res1: a.res1 + c * W,
                         ln2: a.ln2, ln2Mean: a.ln2Mean + c, ln2Rstd: a.ln2Rstd + c,
                         fc1: a.fc1 + c * Hd, gelu: a.gelu, out: a.out + c * W)
    }

    /// One block on sequences seq..<seq+count, its kernels on `ex` (serial when the caller
    /// parallelizes over chunks):
    ///   ln1, qkv = normQKV(x)                          [M, W], [M, 3W]  (every row: keys, values)
    ///   attn     = attention(qkv)                      [m, W]  (m = M, or S·k with a tail k)
    ///   res1     = x + proj(attn); out = res1 + mlp(res1)   [m, W]
    /// keep: write res1/out into `a` (training); otherwise update x in place (inference).
    /// tail k > 0 (training, the last layer with an output tail): only the last k rows of each
    /// sequence are queries; their residual stream, res1 and out are written compact (sequence
    /// s's rows at s·k).
    func blockForward(_ a: LayerActs, x: CFPtr, seq: Int, count S: Int, params w: CFPtr, _ o: BlockOffsets, keep: Bool,
                      tail k: Int = 0, _ ex: Exec = .serial) {
        let s = shape, W = s.W
        let M = rowOff[seq + S] - rowOff[seq]
        normQKV(a, x: x, rows: M, params: w, o, ex)
        attentionForward(a.attn, a.probs, a.qkv, S, rowOff: rowOff + seq, probOff: (k > 0 ? probOffTail : probOff) + seq,
                         maxT: s.T, W, s.H, ex, tail: k)
        if k > 0 {
            // the residual stream of the tail rows, compact
            for i in 0..<S {
                (a.res1 + i * k * W).update(from: x + (rowOff[seq + i + 1] - rowOff[seq] - k) * W, count: k * W)
            }
            projMLP(a, r1: a.res1, residual: nil, out: a.out, rows: S * k, params: w, o, ex)
        } else if keep {
            projMLP(a, r1: a.res1, residual: x, out: a.out, rows: M, params: w, o, ex)
        } else {
            let r1 = FPtr(mutating: x)
            projMLP(a, r1: r1, residual: nil, out: r1, rows: M, params: w, o, ex)
        }
    }

    /// A block's first half up to the attention, on M rows:
    ///   ln1 = norm1(x)                      [M, W]
    ///   qkv = ln1 · Wqkvᵀ + b               [M, 3W]  (rows: q | k | v, each head-major)
    func normQKV(_ a: LayerActs, x: CFPtr, rows M: Int, params w: CFPtr, _ o: BlockOffsets, _ ex: Exec) {
        let W = shape.W
        layerNormForward(a.ln1, a.ln1Mean, a.ln1Rstd, x, w + o.norm1W, w + o.norm1B, M, W, lnEps, ex)
        linearForward(a.qkv, a.ln1, w + o.qkvW, w + o.qkvB, M, W, 3 * W, packed: a.pack, ex)
    }

    /// A block's second half on the m query rows, after the attention (attn [m, W]):
    ///   r1  = residual + attn · Wprojᵀ + b          [m, W]  (residual nil: r1 already holds it)
    ///   out = r1 + fc2(gelu(fc1(norm2(r1))))        [m, W]  (out == r1: in place)
    /// Either form of the residual gives the same floats: (residual + b) + product.
    func projMLP(_ a: LayerActs, r1: FPtr, residual: CFPtr?, out: FPtr, rows m: Int, params w: CFPtr,
                 _ o: BlockOffsets, _ ex: Exec) {
        let W = shape.W, Hd = shape.hidden
        linearForward(r1, a.attn, w + o.projW, w + o.projB, m, W, W, accumulate: true, residual: residual,
                      packed: a.pack, ex)
        layerNormForward(a.ln2, a.ln2Mean, a.ln2Rstd, r1, w + o.norm2W, w + o.norm2B, m, W, lnEps, ex)
        linearForward(a.fc1, a.ln2, w + o.fc1W, w + o.fc1B, m, W, Hd, packed: a.pack, ex)
        geluForward(a.gelu, a.fc1, m * Hd, ex)
        linearForward(out, a.gelu, w + o.fc2W, w + o.fc2B, m, Hd, W, accumulate: true,
                      residual: out == r1 ? nil : CFPtr(r1), packed: a.pack, ex)
    }

    /// Inference forward in place on `input`; each task runs all layers on a chunk of
    /// sequences with its thread's scratch; returns `input`. `tap(layer, firstSeq, count, rows,
    /// worker)` is called (on the task's thread) after each layer with the chunk's output rows.
    @discardableResult
    func forwardInference<Tap: LayerTap>(params w: CFPtr, blocks: [BlockOffsets], _ ex: Exec, tap: Tap) -> FPtr {
        if layerParallel {
            for l in 0..<shape.depth {
                blockForward(layers[0], x: input, seq: 0, count: shape.S, params: w, blocks[l], keep: false, ex)
                tap(l, 0, shape.S, input, 0)
            }
            return input
        }
        ex.pool.run(tasks: nChunks, InferenceTask(stack: self, params: w, blocks: blocks, tap: tap))
        return input
    }

    @discardableResult
    func forwardInference(params w: CFPtr, blocks: [BlockOffsets], _ ex: Exec) -> FPtr {
        forwardInference(params: w, blocks: blocks, ex, tap: NoTap())
    }

    /// Inference forward whose last layer computes only selected rows: sequence s's rows
    /// selRows[selOff[s] ..< selOff[s+1]] (ascending, relative to the sequence), written compact
    /// to out [selOff[S], W] in that order — the same numbers as those rows of
    /// forwardInference (every row is still a key and value of the last attention). Needs
    /// depth ≥ 1 and at most shape.T selected rows per sequence; `input` is overwritten.
    func forwardInferenceSelected(params w: CFPtr, blocks: [BlockOffsets], selOff: UnsafePointer<Int>,
                                  selRows: UnsafePointer<Int32>, out: FPtr, _ ex: Exec) {
        if layerParallel {
            let d = shape.depth
            for l in 0..<(d - 1) { blockForward(layers[0], x: input, seq: 0, count: shape.S, params: w, blocks[l], keep: false, ex) }
            blockForwardSelected(layers[0], x: input, seq: 0, count: shape.S, params: w, blocks[d - 1], selOff: selOff,
                                 selRows: selRows, out: out, ex)
            return
        }
        ex.pool.run(tasks: nChunks, InferenceSelectedTask(stack: self, params: w, blocks: blocks, selOff: selOff,
                                                          selRows: selRows, out: out))
    }

    /// The last inference block on the selected rows of sequences seq..<seq+count (see
    /// forwardInferenceSelected): LayerNorm and qkv for every row, attention for the selected
    /// queries, then the residual, projection and MLP on those rows, in `out` at their compact rows.
    func blockForwardSelected(_ a: LayerActs, x: CFPtr, seq: Int, count S: Int, params w: CFPtr, _ o: BlockOffsets,
                              selOff: UnsafePointer<Int>, selRows: UnsafePointer<Int32>, out: FPtr, _ ex: Exec = .serial) {
        let s = shape, W = s.W
        let M = rowOff[seq + S] - rowOff[seq]
        let q0 = selOff[seq], Mq = selOff[seq + S] - q0
        let y = out + q0 * W
        normQKV(a, x: x, rows: M, params: w, o, ex)
        // the selected rows' queries (into ln2, free until the MLP) and residual stream (into y)
        for i in 0..<S {
            let base = rowOff[seq + i] - rowOff[seq]
            for j in selOff[seq + i]..<selOff[seq + i + 1] {
                let r = base + Int(selRows[j])
                (a.ln2 + (j - q0) * W).update(from: a.qkv + r * 3 * W, count: W)
                (y + (j - q0) * W).update(from: x + r * W, count: W)
            }
        }
        attentionSelectedQueries(a.attn, a.probs, a.ln2, a.qkv, S, rowOff: rowOff + seq, selOff: selOff + seq, W, s.H)
        projMLP(a, r1: y, residual: nil, out: y, rows: Mq, params: w, o, ex)
    }

    /// Backward through all blocks, after `prepareBackward` and with the gradient of the last
    /// output written where it said ([S·k, W] compact with an output tail k; the shared scratch
    /// is not copied); returns the gradient of
    /// `input` (a scratch pointer valid until the next prepareBackward of a stack sharing the
    /// scratch). Param grads accumulate.
    func backward(params w: CFPtr, grads g: FPtr, blocks: [BlockOffsets], _ ex: Exec) throws(IJEPAError) -> FPtr {
        for l in stride(from: shape.depth - 1, through: 0, by: -1) {
            let xin = l == 0 ? CFPtr(input) : CFPtr(layers[l - 1].out)
            try blockBackward(layers[l], xin: xin, params: w, grads: g, blocks[l], ex,
                              tail: tail > 0 && l == shape.depth - 1 ? tail : 0)
        }
        return dres
    }

    /// Backward through one block (blockForward with keep), next to it in reverse:
    /// dres holds the output gradient on entry ([M, W], or [S·k, W] compact with a tail k) and
    /// the input gradient [M, W] on exit. gelu, ln2, the attention output and ln1 are recomputed.
    private func blockBackward(_ a: LayerActs, xin: CFPtr, params w: CFPtr, grads g: FPtr, _ o: BlockOffsets,
                               _ ex: Exec, tail k: Int) throws(IJEPAError) {
        let s = shape, M = self.M, W = s.W, Hd = s.hidden
        let m = k > 0 ? s.S * k : M, probOff = k > 0 ? probOffTail : self.probOff
        // MLP branch on the m query rows: out = res1 + fc2(gelu(fc1(ln2(res1))))
        linearBackwardInput(dhid, dres, w + o.fc2W, m, Hd, W, ex)             // dgelu
        geluRecomputeBackward(big, dhid, dhid, a.fc1, m * Hd, ex)             // gelu; dfc1 in place
        linearBackwardWeight(g + o.fc2W, g + o.fc2B, dres, big, m, Hd, W, ex)
        layerNormForward(lnRe, nil, nil, a.res1, w + o.norm2W, w + o.norm2B, m, W, lnEps, ex)
        linearBackward(dln, g + o.fc1W, g + o.fc1B, dhid, lnRe, w + o.fc1W, m, W, Hd, ex)
        try layerNormBackward(dres, g + o.norm2W, g + o.norm2B, dln, a.res1, a.ln2Mean, a.ln2Rstd,
                              w + o.norm2W, m, W, accumulate: true, ex)
        // attention branch: res1 = x + proj(attn(ln1(x))); attn recomputed into dln (free until
        // the qkv backward), dattn in lnRe, dqkv in big (dK and dV for every row; with a tail,
        // dQ is 0 on the rows that are not queries)
        attentionRecomputeOutput(dln, a.probs, a.qkv, s.S, rowOff: rowOff, probOff: probOff, maxT: s.T, W, s.H, ex,
                                 tail: k)
        linearBackward(lnRe, g + o.projW, g + o.projB, dres, dln, w + o.projW, m, W, W, ex)
        attentionBackward(big, dprobs, lnRe, a.qkv, a.probs, s.S, rowOff: rowOff, probOff: probOff, maxT: s.T,
                          W, s.H, ex, tail: k)
        layerNormForward(lnRe, nil, nil, xin, w + o.norm1W, w + o.norm1B, M, W, lnEps, ex)
        linearBackward(dln, g + o.qkvW, g + o.qkvB, big, lnRe, w + o.qkvW, M, W, 3 * W, ex)
        if k > 0 {
            // the residual: the tail rows' gradient scattered to their rows, 0 on the others
            lnRe.update(from: dres, count: m * W)
            dres.update(repeating: 0, count: M * W)
            for q in 0..<s.S {
                (dres + (rowOff[q + 1] - k) * W).update(from: lnRe + q * k * W, count: k * W)
            }
        }
        // plus the LayerNorm branch of every row
        try layerNormBackward(dres, g + o.norm1W, g + o.norm1B, dln, xin, a.ln1Mean, a.ln1Rstd,
                              w + o.norm1W, M, W, accumulate: true, ex)
    }
}
