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
    public internal(set) var gradsReady = false
    /// Loss of the last forward_backward.
    public internal(set) var lastLoss: Float = .nan
    /// The same in float64, as accumulated (for finite-difference tests).
    public internal(set) var lastLossDouble: Double = .nan

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
    /// predictor_embed(z) + pos [Mc, Dp] (forward), its gradient (backward), dz [Mc, D].
    let predEmbed = FloatBuffer(), predEmbedGrad = FloatBuffer(), dCtxOut = FloatBuffer()
    /// Shape of the last forward_backward: (batch, kEnc, kPred); kEnc is the longest context.
    public internal(set) var lastShape = (batch: 0, kEnc: 0, kPred: 0)
    /// Context rows of the last forward_backward (Σ of the context lengths).
    public internal(set) var lastCtxRows = 0
    /// Target-encoder rows computed by the last forward_backward (patches some target block uses).
    public internal(set) var lastTargetRows = 0
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
        exec = Exec(threads: try Exec.threads(config.nThreads))
        initializeWeights(seed: config.seed)
    }

    deinit { tensorSquares.deallocate() }

    /// Threads of this model's kernels (values <= 0 mean all cores; at most 1024).
    public var nThreads: Int { exec.threads }

    /// Sets the threads of this model's kernels (Exec.threads' rule: <= 0 all cores, at most 1024).
    public func setThreads(_ n: Int) throws(IJEPAError) {
        let t = try Exec.threads(n)
        config.nThreads = n
        exec = Exec(threads: t)
    }

    /// The batch rule of every step and encode: 1 ... 2^20 images per call.
    public static let maxBatch = 1 << 20
    public static func checkBatch(_ B: Int) throws(IJEPAError) {
        if B < 1 || B > maxBatch { throw .invalidArgument("batch must be in 1...\(maxBatch), got \(B)") }
    }

    /// The last_k rule of encode_layers: 1 ... depth blocks.
    public static func checkLastK(_ k: Int, depth: Int) throws(IJEPAError) {
        if k < 1 || k > depth { throw .invalidArgument("last_k must be in 1...depth (\(depth)), got \(k)") }
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
    func setBLASThreads() { openblas_set_num_threads(1) }

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
}
