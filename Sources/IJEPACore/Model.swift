import COpenBLAS
import Glibc

/// Statistics of one optimizer step.
public struct StepStats: Sendable, Equatable {
    public var step: Int64 = 0
    public var loss: Float = .nan
    public var lr: Float = 0
    public var weightDecay: Float = 0
    public var emaMomentum: Float = 0
    public var gradNorm: Float = 0
    public init() {}
}

/// Which encoder `encode` runs.
public enum EncoderKind: Int, Sendable { case target = 0, context = 1 }

/// An I-JEPA model with its optimizer and target encoder: one flat float32 block each for
/// trainable parameters, gradients, AdamW m and v, and the target encoder (llm.c style), with
/// named views in `layout`. One model must be used by one thread at a time.
public final class Model {
    /// The config; `nThreads` follows the `nThreads` setter.
    public private(set) var config: ModelConfig
    public let layout: ParamLayout
    public let params: FloatBuffer
    public let grads: FloatBuffer
    public let adamM: FloatBuffer
    public let adamV: FloatBuffer
    /// The target encoder, laid out as the encoder part of `params` (offsets 0..<encoderCount).
    public let target: FloatBuffer
    /// One flag per parameter tensor for the optimizer's finite-update check, and each tensor's
    /// gradient sum of squares.
    let tensorFlags: FloatBuffer
    let tensorSquares: UnsafeMutablePointer<Double>
    /// Fixed 2-D sin-cos tables [N, D] and [N, Dp].
    public let posEmbed: [Float]
    public let predPosEmbed: [Float]
    /// Optimizer steps taken (the schedules' counter).
    public internal(set) var step: Int64 = 0
    public var collator: MaskCollator
    /// Per-step overrides of the schedules; negative means "use the schedule".
    public var overrideLR: Float = -1, overrideWD: Float = -1, overrideEMA: Float = -1
    public let adam = AdamWHyper()
    public private(set) var exec: Exec
    /// Gradients hold the result of a forward_backward not yet consumed by optimizerStep.
    public private(set) var gradsReady = false
    /// Loss of the last forward_backward.
    public private(set) var lastLoss: Float = .nan
    /// The same in float64, as accumulated (for finite-difference tests).
    public private(set) var lastLossDouble: Double = .nan

    // activations (allocated once per shape, grown when a larger one comes)
    /// The context encoder's and the predictor's backward passes run one after the other and
    /// share one scratch buffer.
    let backwardScratch = FloatBuffer()
    let targetStack = TransformerStack()
    lazy var encStack = TransformerStack(backwardScratch: backwardScratch)
    lazy var predStack = TransformerStack(backwardScratch: backwardScratch)
    let colsT = FloatBuffer(), colsC = FloatBuffer()
    /// Target-encoder outputs: all tokens for encode, the target rows for forward_backward.
    let targetOut = FloatBuffer(), targets = FloatBuffer()
    /// Scratch of encode / encodeLayers (pooling sums, per-thread normalized rows).
    let encodeScratch = FloatBuffer()
    /// The no-gradient encoder pass (target pass of a step, encode), on the buffers above.
    lazy var encodePass = EncodePass(stack: targetStack, cols: colsT, out: targetOut, scratch: encodeScratch)
    let ctxOut = FloatBuffer(), ctxMean = FloatBuffer(), ctxRstd = FloatBuffer()
    let predNorm = FloatBuffer(), predMean = FloatBuffer(), predRstd = FloatBuffer()
    let predOut = FloatBuffer()
    let dPredNorm = FloatBuffer()
    /// Tests: keep the targets readable after the step (the loss gradient then gets its own buffer).
    var keepTargets = false
    let dPredOut = FloatBuffer()
    let dpe = FloatBuffer(), dz = FloatBuffer()
    /// Shape of the last forward_backward: (batch, kEnc, kPred); kEnc is the longest context.
    public private(set) var lastShape = (batch: 0, kEnc: 0, kPred: 0)
    /// Context rows of the last forward_backward (Σ of the context lengths).
    public private(set) var lastCtxRows = 0
    /// Target-encoder rows computed by the last forward_backward (patches some target block uses).
    public private(set) var lastTargetRows = 0
    /// Per-step sequence tables (see forwardBackward), reused so a steady step does not allocate.
    var ctxLen: [Int] = [], ctxOff: [Int] = [], ctxIdx: [Int32] = [], ctxImage: [Int32] = []
    /// Target rows: image b's patches that some target block uses are selRows[selOff[b]..<selOff[b+1]]
    /// (ascending); selIndex[b·N + n] is patch n's row among them (−1: unused).
    var selOff: [Int] = [], selRows: [Int32] = [], selIndex: [Int32] = []
    var predLen: [Int] = [], predOff: [Int] = []

    public init(config: ModelConfig) throws {
        try config.validate()
        self.config = config
        layout = ParamLayout(config)
        let n = layout.totalCount
        let bytes = Double(n) * 4 * 4 + Double(layout.encoderCount) * 4
        if bytes > Exec.availableMemory * 0.9 {
            throw IJEPAError.outOfMemory("model needs \(Int(bytes / 1_048_576)) MiB for parameters and optimizer state, more than this machine's memory")
        }
        params = try FloatBuffer(count: n)
        grads = try FloatBuffer(count: n)
        adamM = try FloatBuffer(count: n)
        adamV = try FloatBuffer(count: n)
        target = try FloatBuffer(count: layout.encoderCount)
        tensorFlags = try FloatBuffer(count: layout.tensors.count)
        posEmbed = sinCosPosEmbed2D(dim: config.embedDim, grid: config.gridSize)
        predPosEmbed = sinCosPosEmbed2D(dim: config.predEmbedDim, grid: config.gridSize)
        collator = try MaskCollator(config: config)
        // allocated after the last statement that can throw: a failed init runs no deinit
        tensorSquares = .allocate(capacity: max(1, layout.tensors.count))
        exec = Exec(threads: config.nThreads > 0 ? config.nThreads : Exec.hardwareThreads)
        initializeWeights(seed: config.seed)
    }

    deinit { tensorSquares.deallocate() }

    /// Threads of this model's kernels (values <= 0 mean all cores; at most 1024).
    public var nThreads: Int {
        get { exec.threads }
        set {
            let n = min(newValue, 1024)
            config.nThreads = n
            exec = Exec(threads: n > 0 ? n : Exec.hardwareThreads)
        }
    }

    /// The official training path's init (its three stages, the last undoing the second): Linear and conv weights N(0, 0.02²), biases 0,
    /// LayerNorm 1/0, mask_token N(0, 0.02²); the target encoder is an exact copy.
    public func initializeWeights(seed: UInt64) {
        var rng = RNG(seed: seed)
        let p = params.ptr
        for t in layout.tensors {
            let v = p + t.offset
            if t.name.hasSuffix("bias") {
                v.update(repeating: 0, count: t.count)
            } else if t.shape.count == 1 {
                v.update(repeating: 1, count: t.count)   // LayerNorm weights
            } else {
                for i in 0..<t.count { v[i] = Float(rng.normal() * 0.02) }
            }
        }
        target.ptr.update(from: p, count: layout.encoderCount)
        adamM.zero(); adamV.zero(); grads.zero()
        step = 0
        gradsReady = false
    }

    /// Floats of activation memory a step of this shape needs (kEnc = kPred = 0: encode only);
    /// nil when the count overflows.
    public func activationFloats(batch B: Int, kEnc Kc: Int, kPred Kt: Int) -> Int? {
        let c = config
        func mul(_ xs: Int...) -> Int? {
            var r = 1
            for x in xs { let (v, o) = r.multipliedReportingOverflow(by: x); if o { return nil }; r = v }
            return r
        }
        guard let tokens = mul(B, c.numPatches), let attn = mul(B, c.numHeads, c.numPatches, c.numPatches),
              let wide = mul(tokens, 8 * c.embedDim + 2 * c.mlpHidden + c.patchDim + 8) else { return nil }
        var total = attn + wide + mul(tokens, 3 * c.embedDim)!   // target: one layer of scratch, full/LN/out
        if Kc > 0 {
            let nenc = c.numEncMasks, npred = c.numPredMasks
            guard let mc = mul(nenc, B, Kc), let sp = mul(npred, nenc, B), let mp = mul(sp, Kc + Kt),
                  let encL = mul(mc, 5 * c.embedDim + c.mlpHidden + 4), let encA = mul(nenc, B, c.numHeads, Kc, Kc),
                  let predL = mul(mp, 5 * c.predEmbedDim + c.predMlpHidden + 4),
                  let predA = mul(sp, c.effectivePredHeads, Kc + Kt, Kc + Kt),
                  let e = mul(c.depth, encL + encA), let p = mul(c.predDepth, predL + predA),
                  let extra = mul(mp + mc, 8 * c.embedDim + 8 * c.predEmbedDim)
            else { return nil }
            let (t1, o1) = total.addingReportingOverflow(e + p)
            let (t2, o2) = t1.addingReportingOverflow(extra)
            if o1 || o2 { return nil }
            total = t2
        }
        return total
    }

    /// Activation memory already allocated for (floats), so growth is only checked once per shape.
    private var checkedActivationFloats = 0

    /// Fails with outOfMemory before allocating when a step of this shape cannot fit.
    func checkMemory(_ floats: Int?) throws {
        guard let floats, floats < Int.max / 8 else {
            throw IJEPAError.outOfMemory("the activations of this batch overflow the address space; use a smaller batch")
        }
        if floats <= checkedActivationFloats { return }
        let need = Double(floats - checkedActivationFloats) * 4
        let avail = Exec.availableMemory
        if need > avail * 0.9 {
            throw IJEPAError.outOfMemory("this batch needs about \(Int(Double(floats) * 4 / 1_048_576)) MiB of activations; only \(Int(avail / 1_048_576)) MiB are available. Use a smaller batch.")
        }
        checkedActivationFloats = floats
    }

    /// Marks the gradients as consumed (after loading weights, for instance).
    public func invalidateGradients() { gradsReady = false }

    /// OpenBLAS runs single-threaded inside the model's own pool (process-wide setting).
    private func setBLASThreads() { openblas_set_num_threads(1) }

    // MARK: masks

    /// ragged: keep every context whole (see MaskCollator.sample); nil = the config's raggedContext.
    public func sampleMasks(batch: Int, ragged: Bool? = nil) throws -> MaskSet {
        try collator.sample(batch: batch, ragged: ragged ?? config.raggedContext)
    }

    func checkMasks(_ m: MaskSet, batch: Int) throws {
        if m.batch != batch { throw IJEPAError.shape("masks.batch (\(m.batch)) differs from the image batch (\(batch))") }
        if m.numEnc != config.numEncMasks {
            throw IJEPAError.shape("masks.num_enc (\(m.numEnc)) differs from the config's num_enc_masks (\(config.numEncMasks))")
        }
        if m.numPred != config.numPredMasks {
            throw IJEPAError.shape("masks.num_pred (\(m.numPred)) differs from the config's num_pred_masks (\(config.numPredMasks))")
        }
        try m.validate(numPatches: config.numPatches, seen: &maskSeen)
    }

    /// Scratch of mask validation and of the model's own mask sampling (kept so that a steady
    /// training step does not allocate).
    var maskSeen: [UInt32] = []
    var sampledMasks = MaskSet(batch: 0, numEnc: 0, kEnc: 0, numPred: 0, kPred: 0, enc: [], pred: [])
    var samplerScratch = MaskCollator.SamplerScratch()

    static func checkFinite(_ p: CFPtr, _ n: Int, _ what: String) throws {
        if !allFinite(p, n) { throw IJEPAError.numeric("\(what) contain NaN or Inf") }
    }

    /// checkFinite over the gradients, a task per tensor on the model's threads.
    func checkGradientsFinite() throws {
        struct Body: ChunkBody {
            let tensors: [TensorInfo], g: CFPtr, ok: FPtr
            func callAsFunction(_: Int, _ r: Range<Int>) {
                for ti in r { ok[ti] = allFinite(g + tensors[ti].offset, tensors[ti].count) ? 1 : 0 }
            }
        }
        let ok = tensorFlags.ptr, tensors = layout.tensors
        exec.forEachItem(tensors.count, Body(tensors: tensors, g: grads.ptr, ok: ok))
        if (0..<tensors.count).contains(where: { ok[$0] != 1 }) {
            throw IJEPAError.numeric("gradients contain NaN or Inf")
        }
    }

    // MARK: training

    /// Forward and backward of the I-JEPA loss on one batch; overwrites the gradients with
    /// weight × this batch's gradient, or (accumulate) adds that to the gradients of the
    /// previous forwardBackward of the same step: micro-batches of a larger batch, each weighted
    /// by its share of the loss elements (b / B), give that batch's gradient. images: [batch, C,
    /// H, W] float32, normalized. Returns this batch's loss; `lastLoss` is the weighted sum over
    /// the step's batches. On any error the gradients are unspecified and none are pending.
    @discardableResult
    public func forwardBackward(images: UnsafePointer<Float>, batch B: Int, masks: MaskSet, accumulate: Bool = false,
                                weight: Float = 1) throws -> Float {
        let pending = gradsReady
        gradsReady = false
        if accumulate && !pending {
            throw IJEPAError.state("accumulate needs the gradients of a previous forward_backward of this step (the first batch of a step does not accumulate)")
        }
        if !(weight.isFinite && weight > 0) { throw IJEPAError.invalidArgument("weight must be finite and > 0, got \(weight)") }
        if B <= 0 { throw IJEPAError.invalidArgument("batch must be >= 1, got \(B)") }
        try checkMasks(masks, batch: B)
        try checkMemory(activationFloats(batch: B, kEnc: masks.kEnc, kPred: masks.kPred))
        let c = config
        try Self.checkFinite(images, B * c.inChans * c.imageSize * c.imageSize, "images")
        setBLASThreads()
        let ex = exec
        let N = c.numPatches, D = c.embedDim, Dp = c.predEmbedDim, P = c.patchDim
        let nenc = masks.numEnc, npred = masks.numPred, Kc = masks.kEnc, Kt = masks.kPred
        let Sp = npred * nenc * B              // predictor sequences
        let Mt = Sp * Kt                        // predicted target rows
        let w = CFPtr(params.ptr), g = grads.ptr, tw = CFPtr(target.ptr)
        let E = layout.encoder, PR = layout.predictor
        let pos = posEmbed, ppos = predPosEmbed
        let enc = masks.enc, pred = masks.pred
        lastShape = (B, Kc, Kt)

        // 1. targets: target encoder on the full image → layer_norm (no affine, eps 1e-5) → gather.
        // Only the patches some target block uses are outputs: the last block (and the final norm)
        // run on those rows alone, every patch still a key and value of its attention.
        if B * N > Int(Int32.max) { throw IJEPAError.shape("batch × patches (\(B) × \(N)) must be below 2^31") }
        selOff.reserveCapacity(B + 1); selRows.reserveCapacity(B * N); selIndex.reserveCapacity(B * N)
        selOff.removeAll(keepingCapacity: true); selRows.removeAll(keepingCapacity: true)
        selIndex.removeAll(keepingCapacity: true)
        selIndex.append(contentsOf: repeatElement(-1, count: B * N))
        for p in 0..<npred { for b in 0..<B { for t in 0..<Kt { selIndex[b * N + Int(pred[(p * B + b) * Kt + t])] = 0 } } }
        selOff.append(0)
        for b in 0..<B {
            for n in 0..<N where selIndex[b * N + n] == 0 {
                selIndex[b * N + n] = Int32(selRows.count)
                selRows.append(Int32(n))
            }
            selOff.append(selRows.count)
        }
        let Ms = selRows.count
        _ = try embedFullImages(images: images, batch: B, weights: tw)
        let tsel = try targetOut.ensure(Ms * D)
        selOff.withUnsafeBufferPointer { so in
            selRows.withUnsafeBufferPointer { sr in
                targetStack.forwardInferenceSelected(params: tw, blocks: E.blocks, selOff: so.baseAddress!,
                                                     selRows: sr.baseAddress!, out: tsel, ex)
            }
        }
        layerNormForward(tsel, nil, nil, tsel, tw + E.normW, tw + E.normB, Ms, D, blockLNEps, ex)
        lastTargetRows = Ms
        // (gathered first, then normalized in place: the same floats as normalizing all B·N rows,
        // without a second [B·N, D] buffer)
        let tg = try targets.ensure(Mt * D)
        for j in 0..<Sp {
            let p = j / (nenc * B), b = j % B
            for t in 0..<Kt {
                let n = Int(pred[(p * B + b) * Kt + t])
                (tg + (j * Kt + t) * D).update(from: tsel + Int(selIndex[b * N + n]) * D, count: D)
            }
        }
        layerNormForward(tg, nil, nil, tg, nil, nil, Mt, D, 1e-5, ex)

        // Sequence layout. Context row c = j*B + b (context j of image b) has ctxLen[c] tokens at
        // rows ctxOff[c]..< of the context encoder; predictor sequence q = p*nenc*B + c (target
        // block p) holds context c then the Kt mask tokens at rows predOff[q]..<. With uniform
        // masks every context has Kc tokens; with ragged ones each keeps its own length.
        let nc = nenc * B
        // (capacity for contexts of the longest length of these masks, which the memory check
        // above covered; kept, so later batches of no larger shape do not allocate)
        ctxIdx.reserveCapacity(nc * Kc); ctxImage.reserveCapacity(nc * Kc)
        ctxLen.reserveCapacity(nc); ctxOff.reserveCapacity(nc + 1)
        predLen.reserveCapacity(Sp); predOff.reserveCapacity(Sp + 1)
        ctxLen.removeAll(keepingCapacity: true); ctxOff.removeAll(keepingCapacity: true)
        ctxIdx.removeAll(keepingCapacity: true); ctxImage.removeAll(keepingCapacity: true)
        predLen.removeAll(keepingCapacity: true); predOff.removeAll(keepingCapacity: true)
        ctxOff.append(0)
        for r in 0..<nc {
            let l = masks.contextLength(r)
            ctxLen.append(l); ctxOff.append(ctxOff[r] + l)
            for i in 0..<l { ctxIdx.append(enc[r * Kc + i]); ctxImage.append(Int32(r % B)) }
        }
        predOff.append(0)
        for q in 0..<Sp {
            let l = ctxLen[q % nc] + Kt
            predLen.append(l); predOff.append(predOff[q] + l)
        }
        let Mc = ctxOff[nc]                     // context rows
        lastCtxRows = Mc
        let cLen = ctxLen, cOff = ctxOff, pOff = predOff

        // 2. context encoder on the kept patches (gathered before the blocks)
        let encShape = StackShape(S: nc, T: Kc, W: D, H: c.numHeads, hidden: c.mlpHidden, depth: c.depth)
        try encStack.prepare(encShape, lengths: ctxLen, training: true, threads: ex.threads)
        let cols = try colsC.ensure(Mc * P)
        ctxIdx.withUnsafeBufferPointer { e in
            ctxImage.withUnsafeBufferPointer { im in
                gatherPatches(cols, images, rows: Mc, imageIndex: { Int(im[$0]) }, patchIndex: { Int(e[$0]) },
                              C: c.inChans, height: c.imageSize, width: c.imageSize, patch: c.patchSize)
            }
        }
        let x0 = encStack.input
        linearForward(x0, cols, w + E.patchW, w + E.patchB, Mc, P, D, ex)
        ctxIdx.withUnsafeBufferPointer { e in
            pos.withUnsafeBufferPointer { pe in
                for r in 0..<Mc {
                    let n = Int(e[r]), row = x0 + r * D
                    for i in 0..<D { row[i] += pe[n * D + i] }
                }
            }
        }
        let encLast = encStack.forward(params: w, blocks: E.blocks, ex)
        let z = try ctxOut.ensure(Mc * D)
        layerNormForward(z, try ctxMean.ensure(Mc), try ctxRstd.ensure(Mc), encLast, w + E.normW, w + E.normB, Mc, D, blockLNEps, ex)

        // 3. predictor: embed context, add predictor pos; append mask tokens + pos per target block
        let predShape = StackShape(S: Sp, T: Kc + Kt, W: Dp, H: c.effectivePredHeads, hidden: c.predMlpHidden, depth: c.predDepth)
        // (only the mask-token rows are outputs: the last block skips the context rows' work)
        try predStack.prepare(predShape, lengths: predLen, training: true, threads: ex.threads, outputTail: Kt)
        let xp = predStack.input
        let pe = try dpe.ensure(Mc * Dp)     // predictor_embed(z) + pos, reused as dpe in backward
        linearForward(pe, z, w + PR.embedW, w + PR.embedB, Mc, D, Dp, ex)
        ppos.withUnsafeBufferPointer { pp in
            ctxIdx.withUnsafeBufferPointer { e in
                for r in 0..<Mc {
                    let n = Int(e[r]); let row = pe + r * Dp
                    for i in 0..<Dp { row[i] += pp[n * Dp + i] }
                }
            }
            let mt = w + PR.maskToken
            for j in 0..<Sp {
                let p = j / nc, cidx = j % nc, b = j % B
                (xp + pOff[j] * Dp).update(from: pe + cOff[cidx] * Dp, count: cLen[cidx] * Dp)
                for t in 0..<Kt {
                    let n = Int(pred[(p * B + b) * Kt + t])
                    let row = xp + (pOff[j] + cLen[cidx] + t) * Dp
                    for i in 0..<Dp { row[i] = mt[i] + pp[n * Dp + i] }
                }
            }
        }
        let rows = CFPtr(predStack.forward(params: w, blocks: PR.blocks, ex))   // [Mt, Dp]: sequence j's targets at j·Kt
        let pn = try predNorm.ensure(Mt * Dp), pm = try predMean.ensure(Mt), pr = try predRstd.ensure(Mt)
        layerNormForward(pn, pm, pr, rows, w + PR.normW, w + PR.normB, Mt, Dp, blockLNEps, ex)
        let out = try predOut.ensure(Mt * D)
        linearForward(out, pn, w + PR.projW, w + PR.projB, Mt, Dp, D, ex)

        // 4. loss and its gradient (written over the targets: the loss is their last use)
        let dout = keepTargets ? try dPredOut.ensure(Mt * D) : tg
        lastLossDouble = smoothL1(out, tg, Mt * D, dout)
        let loss = Float(lastLossDouble)
        if !loss.isFinite { throw IJEPAError.numeric("the loss is not finite (\(loss))") }
        lastLoss = accumulate ? lastLoss + weight * loss : weight * loss
        if weight != 1 { for i in 0..<(Mt * D) { dout[i] *= weight } }

        // 5. backward
        struct Zero: ChunkBody {
            let g: FPtr
            func callAsFunction(_: Int, _ r: Range<Int>) { (g + r.lowerBound).update(repeating: 0, count: r.count) }
        }
        // (the parameter gradients below all add into g)
        if !accumulate { exec.forEach(layout.totalCount, grain: 1 << 18, Zero(g: g)) }
        let dpn = try dPredNorm.ensure(Mt * Dp)
        linearBackward(dpn, g + PR.projW, g + PR.projB, dout, pn, w + PR.projW, Mt, Dp, D, ex)
        // the predictor's output gradient: its mask-token rows, compact (the stack's output tail)
        let dlast = try predStack.prepareBackward()
        try layerNormBackward(dlast, g + PR.normW, g + PR.normB, dpn, rows, pm, pr, w + PR.normW, Mt, Dp,
                          accumulate: false, ex)
        let dxp = try predStack.backward(params: w, grads: g, blocks: PR.blocks, ex)
        // mask token: Σ over all target rows; context rows: Σ over the npred copies of each context
        let dmt = g + PR.maskToken
        let dpeP = dpe.ptr
        dpeP.update(repeating: 0, count: Mc * Dp)
        for j in 0..<Sp {
            let cidx = j % nc
            let src = dxp + pOff[j] * Dp, dst = dpeP + cOff[cidx] * Dp
            for i in 0..<(cLen[cidx] * Dp) { dst[i] += src[i] }
            for t in 0..<Kt {
                let row = dxp + (pOff[j] + cLen[cidx] + t) * Dp
                for i in 0..<Dp { dmt[i] += row[i] }
            }
        }
        let dzP = try dz.ensure(Mc * D)
        linearBackward(dzP, g + PR.embedW, g + PR.embedB, dpeP, z, w + PR.embedW, Mc, D, Dp, ex)
        // (the encoder's backward scratch is the predictor's: dxp is consumed above)
        let dlastE = try encStack.prepareBackward()
        try layerNormBackward(dlastE, g + E.normW, g + E.normB, dzP, encLast, ctxMean.ptr, ctxRstd.ptr, w + E.normW,
                          Mc, D, accumulate: false, ex)
        let dx0 = try encStack.backward(params: w, grads: g, blocks: E.blocks, ex)
        linearBackward(nil, g + E.patchW, g + E.patchB, dx0, cols, w + E.patchW, Mc, P, D, ex)

        try checkGradientsFinite()
        gradsReady = true
        return loss
    }

    /// Lays out the target stack for inference on B full images and writes its input: patch
    /// embedding of all N patches plus the position table. Returns the input rows [B*N, D].
    /// The patch grid of the model's full images.
    var fullImages: PatchGrid { PatchGrid(height: config.imageSize, width: config.imageSize, patch: config.patchSize) }

    func embedFullImages(images: UnsafePointer<Float>, batch B: Int, weights w: CFPtr) throws -> FPtr {
        let c = config
        return try posEmbed.withUnsafeBufferPointer { pe in
            try encodePass.embed(images, batch: B, grid: fullImages,
                                 shape: c.encoderShape, weights: w, offsets: layout.encoder, pos: pe.baseAddress!, exec)
        }
    }

    /// Schedules advance, AdamW on encoder + predictor, EMA of the target encoder (official order).
    /// Consumes the gradients of the last forwardBackward (possibly all-reduced by the caller).
    public func optimizerStep() throws -> StepStats {
        guard gradsReady else {
            throw IJEPAError.state("optimizer_step needs gradients: call forward_backward first (each forward_backward feeds one optimizer step)")
        }
        // the step stays below stateCounterLimit, so every state a step leaves saves and loads
        guard step < stateCounterLimit - 1 else {
            throw IJEPAError.state("the step counter cannot advance past \(step); nothing was updated")
        }
        let g = CFPtr(grads.ptr)
        let next = step + 1
        let lr = overrideLR >= 0 ? Double(overrideLR) : Schedules.learningRate(step: next, config)
        let wd = overrideWD >= 0 ? Double(overrideWD) : Schedules.weightDecay(step: next, config)
        let m = overrideEMA >= 0 ? Double(overrideEMA) : Schedules.momentum(step: next, config)
        let scheduleOK = lr.isFinite && wd.isFinite && m.isFinite && m <= 1 && m >= 0
        let p = params.ptr, mm = adamM.ptr, vv = adamV.ptr
        let ex = exec
        let tensors = layout.tensors
        // One parallel pass (a task per tensor): the gradient's sum of squares and a dry run of the update
        // (an update that would overflow, e.g. a huge lr or weight decay, is an error with
        // nothing changed; with finite parameters and m in [0, 1] the EMA stays finite).
        struct Check: ChunkBody {
            let tensors: [TensorInfo], g: CFPtr, p: CFPtr, m: CFPtr, v: CFPtr, ok: FPtr, sqs: UnsafeMutablePointer<Double>
            let scheduleOK: Bool, lr: Double, wd: Double, step: Int64, adam: AdamWHyper
            func callAsFunction(_: Int, _ r: Range<Int>) {
                for ti in r {
                    let t = tensors[ti]
                    let (finite, sq) = adamwCheck(p + t.offset, g + t.offset, m + t.offset, v + t.offset, t.count,
                                                  lr: lr, weightDecay: t.decay ? wd : 0, step: step, adam)
                    sqs[ti] = sq
                    ok[ti] = scheduleOK && sq.isFinite && finite ? 1 : 0
                }
            }
        }
        let ok = tensorFlags.ptr, sqs = tensorSquares
        ex.forEachItem(tensors.count, Check(tensors: tensors, g: g, p: p, m: mm, v: vv, ok: ok, sqs: sqs,
                                        scheduleOK: scheduleOK, lr: lr, wd: wd, step: next, adam: adam))
        var sq = 0.0
        for ti in 0..<tensors.count { sq += sqs[ti] }
        if !sq.isFinite { throw IJEPAError.numeric("gradients contain NaN or Inf; nothing was updated") }
        if !scheduleOK {
            throw IJEPAError.numeric("schedule values are not usable (lr \(lr), weight decay \(wd), momentum \(m)); nothing was updated")
        }
        if let bad = (0..<tensors.count).first(where: { ok[$0] != 1 }) {
            throw IJEPAError.numeric("this update (lr \(lr), weight decay \(wd)) would make \(tensors[bad].name) or its AdamW moments non-finite; nothing was updated")
        }
        // AdamW per tensor, then (while the tensor is in cache) the EMA of its encoder part:
        // θ̄ ← m·θ̄ + (1−m)·θ, with the updated θ as in the official order
        struct Update: ChunkBody {
            let tensors: [TensorInfo], g: CFPtr, p: FPtr, m: FPtr, v: FPtr, lr: Double, wd: Double, step: Int64
            let adam: AdamWHyper, target: FPtr, encoderCount: Int, ema: Float, omm: Float
            func callAsFunction(_: Int, _ r: Range<Int>) {
                for ti in r {
                    let t = tensors[ti]
                    adamwUpdate(p + t.offset, g + t.offset, m + t.offset, v + t.offset, t.count,
                                lr: lr, weightDecay: t.decay ? wd : 0, step: step, adam)
                    for j in t.offset..<min(t.offset + t.count, max(t.offset, encoderCount)) {
                        target[j] = target[j] * ema + omm * p[j]
                    }
                }
            }
        }
        ex.forEachItem(tensors.count, Update(tensors: tensors, g: g, p: p, m: mm, v: vv, lr: lr, wd: wd, step: next, adam: adam,
                                         target: target.ptr, encoderCount: layout.encoderCount,
                                         ema: Float(m), omm: Float(1 - m)))
        step = next
        gradsReady = false
        var s = StepStats()
        s.step = next; s.loss = lastLoss; s.lr = Float(lr); s.weightDecay = Float(wd)
        s.emaMomentum = Float(m); s.gradNorm = Float(sq.squareRoot())
        return s
    }

    /// forwardBackward with masks sampled from the model's collator when `masks` is nil (ragged
    /// contexts when `ragged`, nil = the config's raggedContext). The images are checked before
    /// sampling, and on any error the collator is restored, so a failed call leaves the mask
    /// stream exactly where it was.
    @discardableResult
    public func forwardBackward(images: UnsafePointer<Float>, batch: Int, masks: MaskSet?, ragged: Bool? = nil,
                                accumulate: Bool = false, weight: Float = 1) throws -> Float {
        if let masks {
            return try forwardBackward(images: images, batch: batch, masks: masks, accumulate: accumulate, weight: weight)
        }
        let saved = collator
        do {
            if batch <= 0 { throw IJEPAError.invalidArgument("batch must be >= 1, got \(batch)") }
            let c = config
            try Self.checkFinite(images, batch * c.inChans * c.imageSize * c.imageSize, "images")
            try collator.sample(batch: batch, ragged: ragged ?? config.raggedContext, into: &sampledMasks,
                                scratch: &samplerScratch)
            return try forwardBackward(images: images, batch: batch, masks: sampledMasks, accumulate: accumulate, weight: weight)
        } catch {
            collator = saved
            gradsReady = false
            throw error
        }
    }

    /// One full official training step; masks nil = sample from the model's collator. On any
    /// error nothing is updated: parameters, optimizer state, target encoder, step counter and
    /// mask stream are as they were.
    public func trainStep(images: UnsafePointer<Float>, batch: Int, masks: MaskSet? = nil, ragged: Bool? = nil) throws -> StepStats {
        let saved = collator
        do {
            try forwardBackward(images: images, batch: batch, masks: masks, ragged: ragged)
            return try optimizerStep()
        } catch {
            collator = saved
            throw error
        }
    }

    /// One optimizer step over `batch` images run as micro-batches of at most `microBatch`
    /// (gradient accumulation): the masks of the whole batch come from one draw (masks nil:
    /// the collator, ragged as `ragged` or the config says; the official cut to the batch
    /// minimum over the whole batch), each micro-batch takes its images' rows and adds its
    /// gradient weighted by its share of the batch, so the step equals one step of `batch`
    /// images (to float rounding) with the activation memory of one micro-batch. On any error
    /// nothing is updated and the mask stream is as it was.
    public func trainStep(images: UnsafePointer<Float>, batch: Int, microBatch: Int, masks: MaskSet? = nil,
                          ragged: Bool? = nil) throws -> StepStats {
        if microBatch < 1 { throw IJEPAError.invalidArgument("micro_batch must be >= 1, got \(microBatch)") }
        if batch <= 0 { throw IJEPAError.invalidArgument("batch must be >= 1, got \(batch)") }
        let c = config
        let perImage = c.inChans * c.imageSize * c.imageSize
        try Self.checkFinite(images, batch * perImage, "images")
        let saved = collator
        do {
            let all: MaskSet
            if let masks {
                try checkMasks(masks, batch: batch)
                all = masks
            } else {
                all = try collator.sample(batch: batch, ragged: ragged ?? config.raggedContext)
            }
            var b0 = 0
            while b0 < batch {
                let n = min(microBatch, batch - b0)
                try forwardBackward(images: images + b0 * perImage, batch: n, masks: all.rows(b0, n), accumulate: b0 > 0,
                                    weight: Float(Double(n) / Double(batch)))
                b0 += n
            }
            return try optimizerStep()
        } catch {
            collator = saved
            gradsReady = false
            throw error
        }
    }

    /// Encodes full images with the target or context encoder. tokens: [B, N, D] (or nil);
    /// pooled: [B, D] mean over the N tokens (or nil).
    public func encode(images: UnsafePointer<Float>, batch B: Int, encoder: EncoderKind,
                       tokens: UnsafeMutablePointer<Float>?, pooled: UnsafeMutablePointer<Float>?) throws {
        if B <= 0 { throw IJEPAError.invalidArgument("batch must be >= 1, got \(B)") }
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
        if B <= 0 { throw IJEPAError.invalidArgument("batch must be >= 1, got \(B)") }
        if lastK < 1 || lastK > c.depth { throw IJEPAError.invalidArgument("last_k must be in 1...depth (\(c.depth)), got \(lastK)") }
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

    // MARK: views for tests and tools

    /// Copies of the last forward_backward's intermediate tensors: "target_rows" [R, D] (the
    /// target encoder's outputs, final norm included, on the R patches some target block uses:
    /// image by image, ascending patch index; until the next encode, which reuses the buffer),
    /// "pred_out" [npred*nenc*B, Kt, D], "ctx_out" [nenc*B, Kc, D] (ragged: the contexts' rows one
    /// after the other, [Σ lengths, D]); "targets" [npred*nenc*B, Kt, D] only with `keepTargets` (their
    /// buffer otherwise holds the loss gradient after the step).
    public func lastTensor(_ name: String) -> [Float]? {
        let (B, _, Kt) = lastShape
        let D = config.embedDim
        let nenc = config.numEncMasks, npred = config.numPredMasks
        let (buf, n): (FloatBuffer, Int)
        switch name {
        case "target_rows": (buf, n) = (targetOut, lastTargetRows * D)
        case "targets" where keepTargets: (buf, n) = (targets, npred * nenc * B * Kt * D)
        case "pred_out": (buf, n) = (predOut, npred * nenc * B * Kt * D)
        case "ctx_out": (buf, n) = (ctxOut, lastCtxRows * D)
        default: return nil
        }
        if n == 0 || n > buf.capacity { return nil }
        return Array(UnsafeBufferPointer(start: buf.ptr, count: n))
    }
}
