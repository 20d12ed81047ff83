import CIJEPA
import Glibc
import IJEPACore
import Synchronization

// The model handle and every entry point that takes one. Each function validates its
// arguments, converts, and calls the engine; the engine never sees a raw C struct.

/// What an ijepa_model* points to: the engine model plus C strings for its tensor names.
final class ModelBox: @unchecked Sendable {   // used by one thread at a time (the header's rule)
    let model: Model
    /// Caller masks are copied into these arrays, reused from call to call (a steady training
    /// step with caller masks does not allocate).
    var maskScratch = MaskSet(batch: 0, numEnc: 0, kEnc: 0, numPred: 0, kPred: 0, enc: [], pred: [])
    /// [PARAMS-layout names, TARGET names], strdup'd once, freed with the box.
    let names: [[UnsafeMutablePointer<CChar>]]

    init(_ model: Model) {
        self.model = model
        names = [model.layout.tensors.map { strdup($0.name)! }, model.layout.targetTensors.map { strdup($0.name)! }]
    }

    deinit { for list in names { for p in list { free(p) } } }

    /// Copies caller masks into maskScratch, reusing its arrays' storage.
    func fillMasks(batch: Int, numEnc: Int, kEnc: Int, numPred: Int, kPred: Int, enc: UnsafeBufferPointer<Int32>,
                   pred: UnsafeBufferPointer<Int32>, encLen: UnsafeBufferPointer<Int32>?) {
        maskScratch.batch = batch; maskScratch.numEnc = numEnc; maskScratch.kEnc = kEnc
        maskScratch.numPred = numPred; maskScratch.kPred = kPred
        maskScratch.enc.removeAll(keepingCapacity: true); maskScratch.enc.append(contentsOf: enc)
        maskScratch.pred.removeAll(keepingCapacity: true); maskScratch.pred.append(contentsOf: pred)
        if let encLen {
            if maskScratch.encLen == nil { maskScratch.encLen = [] }
            maskScratch.encLen!.removeAll(keepingCapacity: true); maskScratch.encLen!.append(contentsOf: encLen)
        } else {
            maskScratch.encLen = nil
        }
    }
}

/// Live models by handle (see HandleTable).
let liveModels = HandleTable<ModelBox>(kind: "model", origin: "ijepa_model_create/ijepa_model_load", slot: 0)

func box(_ p: OpaquePointer?, _ arg: String = "m") throws -> ModelBox { try liveModels.lookup(p, arg) }

/// Hands out a new handle for `model` and records it as live.
func register(_ model: Model) -> OpaquePointer { liveModels.register(ModelBox(model)) }

/// Runs a forward_backward entry point's body on a resolved model: any error, the C layer's own
/// checks included, leaves no gradients pending (the header's rule), so a following
/// optimizer_step cannot apply a stale or partial gradient.
func droppingGradientsOnError(_ b: ModelBox, _ body: () throws -> Void) throws {
    do { try body() } catch {
        b.model.invalidateGradients()
        throw error
    }
}

/// The engine's batch rule (Model.checkBatch), applied before any size is computed from it.
func checkBatch(_ batch: Int32) throws -> Int {
    try Model.checkBatch(Int(batch))
    return Int(batch)
}

func checkImages(_ images: UnsafePointer<Float>?, _ m: Model, _ batch: Int) throws -> UnsafePointer<Float> {
    guard let images else { throw invalid("images is NULL") }
    let c = m.config
    let (n, o) = (batch * c.inChans).multipliedReportingOverflow(by: c.imageSize * c.imageSize)
    if o || n > Int(Int32.max) * 4 { throw IJEPAError.shape("batch \(batch) of \(c.inChans)x\(c.imageSize)x\(c.imageSize) images is too large") }
    return images
}

/// The sizes of caller masks (uniform or ragged) against the model and the image batch.
func checkMaskHeader(_ m: Model, batch: Int, _ mBatch: Int32, _ numEnc: Int32, _ kEnc: (Int32, String),
                     _ numPred: Int32, _ kPred: Int32) throws {
    let N = m.config.numPatches
    if Int(mBatch) != batch { throw IJEPAError.shape("masks->batch (\(mBatch)) differs from batch (\(batch))") }
    if Int(numEnc) != m.config.numEncMasks {
        throw IJEPAError.shape("masks->num_enc (\(numEnc)) differs from the model's num_enc_masks (\(m.config.numEncMasks))")
    }
    if Int(numPred) != m.config.numPredMasks {
        throw IJEPAError.shape("masks->num_pred (\(numPred)) differs from the model's num_pred_masks (\(m.config.numPredMasks))")
    }
    func inRange(_ v: Int32, _ name: String) throws {   // (no array literal: this runs every step)
        if v < 1 || Int(v) > N { throw IJEPAError.shape("masks->\(name) must be in 1...\(N), got \(v)") }
    }
    try inRange(kEnc.0, kEnc.1)
    try inRange(kPred, "k_pred")
}

/// Copies and validates caller masks (NULL → nil: the model samples its own).
func masksFromC(_ mp: UnsafePointer<ijepa_masks>?, _ b: ModelBox, batch: Int) throws -> MaskSet? {
    guard let mp else { return nil }
    let m = b.model
    let k = mp.pointee
    try checkMaskHeader(m, batch: batch, k.batch, k.num_enc, (k.k_enc, "k_enc"), k.num_pred, k.k_pred)
    guard let enc = k.enc else { throw invalid("masks->enc is NULL") }
    guard let pred = k.pred else { throw invalid("masks->pred is NULL") }
    let ne = Int(k.num_enc) * batch * Int(k.k_enc), np = Int(k.num_pred) * batch * Int(k.k_pred)
    b.fillMasks(batch: batch, numEnc: Int(k.num_enc), kEnc: Int(k.k_enc), numPred: Int(k.num_pred), kPred: Int(k.k_pred),
                enc: UnsafeBufferPointer(start: enc, count: ne), pred: UnsafeBufferPointer(start: pred, count: np), encLen: nil)
    return b.maskScratch   // the engine validates the indices
}

/// Copies and validates caller ragged masks (NULL → nil: the model samples ragged masks).
func raggedMasksFromC(_ mp: UnsafePointer<ijepa_ragged_masks>?, _ b: ModelBox, batch: Int) throws -> MaskSet? {
    guard let mp else { return nil }
    let m = b.model
    let k = mp.pointee
    try checkMaskHeader(m, batch: batch, k.batch, k.num_enc, (k.k_enc_max, "k_enc_max"), k.num_pred, k.k_pred)
    guard let enc = k.enc else { throw invalid("masks->enc is NULL") }
    guard let len = k.enc_len else { throw invalid("masks->enc_len is NULL") }
    guard let pred = k.pred else { throw invalid("masks->pred is NULL") }
    let nl = Int(k.num_enc) * batch
    let ne = nl * Int(k.k_enc_max), np = Int(k.num_pred) * batch * Int(k.k_pred)
    b.fillMasks(batch: batch, numEnc: Int(k.num_enc), kEnc: Int(k.k_enc_max), numPred: Int(k.num_pred),
                kPred: Int(k.k_pred), enc: UnsafeBufferPointer(start: enc, count: ne),
                pred: UnsafeBufferPointer(start: pred, count: np), encLen: UnsafeBufferPointer(start: len, count: nl))
    return b.maskScratch   // the engine validates lengths and indices
}

/// malloc'ed copy of `a` (at least one element, so a valid pointer is never NULL).
func mallocCopy(_ a: [Int32]) throws -> UnsafeMutablePointer<Int32> {
    guard let p = malloc(max(1, a.count) * 4)?.assumingMemoryBound(to: Int32.self) else {
        throw IJEPAError.outOfMemory("cannot allocate the mask arrays")
    }
    p.update(from: a, count: a.count)
    return p
}

func writeStats(_ s: StepStats, _ out: UnsafeMutablePointer<ijepa_step_stats>?) {
    guard let out else { return }
    out.pointee = ijepa_step_stats(step: s.step, loss: s.loss, lr: s.lr, weight_decay: s.weightDecay,
                                   ema_momentum: s.emaMomentum, grad_norm: s.gradNorm)
}

// MARK: lifecycle

@c @implementation
public func ijepa_model_create(_ cfg: UnsafePointer<ijepa_config>?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    guarded {
        guard let out else { throw invalid("out is NULL") }
        out.pointee = register(try Model(config: try swiftConfig(cfg)))
    }
}

@c @implementation
public func ijepa_model_free(_ m: OpaquePointer?) {
    liveModels.remove(m)
}

@c @implementation
public func ijepa_model_get_config(_ m: OpaquePointer?, _ out: UnsafeMutablePointer<ijepa_config>?) -> Int32 {
    guarded {
        let b = try box(m)
        guard let out else { throw invalid("out is NULL") }
        try writeCovered(cConfig(b.model.config), to: out, "out", minimum: configSizeV1)
    }
}

@c @implementation
public func ijepa_model_set_n_threads(_ m: OpaquePointer?, _ n_threads: Int32) -> Int32 {
    guarded {
        let b = try box(m)
        try b.model.setThreads(Int(n_threads))
    }
}

@c @implementation
public func ijepa_model_num_patches(_ m: OpaquePointer?) -> Int32 {
    var r: Int32 = -1
    _ = guarded { r = Int32(try box(m).model.config.numPatches) }
    return r
}

@c @implementation
public func ijepa_model_embed_dim(_ m: OpaquePointer?) -> Int32 {
    var r: Int32 = -1
    _ = guarded { r = Int32(try box(m).model.config.embedDim) }
    return r
}

@c @implementation
public func ijepa_model_step(_ m: OpaquePointer?) -> Int64 {
    var r: Int64 = -1
    _ = guarded { r = try box(m).model.step }
    return r
}

// MARK: masks

@c @implementation
public func ijepa_masks_sample(_ m: OpaquePointer?, _ batch: Int32, _ out: UnsafeMutablePointer<ijepa_masks>?) -> Int32 {
    guarded {
        let b = try box(m)
        guard let out else { throw invalid("out is NULL") }
        let B = try checkBatch(batch)
        let s = try b.model.sampleMasks(batch: B, ragged: false)
        let enc = try mallocCopy(s.enc)
        guard let pred = try? mallocCopy(s.pred) else { free(enc); throw IJEPAError.outOfMemory("cannot allocate the mask arrays") }
        out.pointee = ijepa_masks(batch: Int32(s.batch), num_enc: Int32(s.numEnc), k_enc: Int32(s.kEnc),
                                  num_pred: Int32(s.numPred), k_pred: Int32(s.kPred), enc: enc, pred: pred)
    }
}

@c @implementation
public func ijepa_masks_free(_ masks: UnsafeMutablePointer<ijepa_masks>?) {
    guard let masks else { return }
    free(masks.pointee.enc)
    free(masks.pointee.pred)
    masks.pointee = ijepa_masks()
}

@c @implementation
public func ijepa_masks_sample_ragged(_ m: OpaquePointer?, _ batch: Int32, _ out: UnsafeMutablePointer<ijepa_ragged_masks>?) -> Int32 {
    guarded {
        let b = try box(m)
        guard let out else { throw invalid("out is NULL") }
        let B = try checkBatch(batch)
        let saved = b.model.collator
        let s = try b.model.sampleMasks(batch: B, ragged: true)
        var ptrs: [UnsafeMutablePointer<Int32>] = []
        do {
            for a in [s.enc, s.encLen ?? [], s.pred] { ptrs.append(try mallocCopy(a)) }
        } catch {
            for p in ptrs { free(p) }
            b.model.collator = saved   // nothing handed out: the mask stream stays where it was
            throw error
        }
        out.pointee = ijepa_ragged_masks(batch: Int32(s.batch), num_enc: Int32(s.numEnc), k_enc_max: Int32(s.kEnc),
                                         num_pred: Int32(s.numPred), k_pred: Int32(s.kPred),
                                         enc: ptrs[0], enc_len: ptrs[1], pred: ptrs[2])
    }
}

@c @implementation
public func ijepa_ragged_masks_free(_ masks: UnsafeMutablePointer<ijepa_ragged_masks>?) {
    guard let masks else { return }
    free(masks.pointee.enc)
    free(masks.pointee.enc_len)
    free(masks.pointee.pred)
    masks.pointee = ijepa_ragged_masks()
}

// MARK: training

/// The training entry points' common path: the model, batch and images checked, the caller's
/// masks (uniform or ragged; nil: the model samples them) copied, then one step, in micro-batches
/// when microBatch is given.
func trainStepC(_ m: OpaquePointer?, _ images: UnsafePointer<Float>?, _ batch: Int32, microBatch: Int32? = nil,
                ragged: Bool?, _ masks: (ModelBox, Int) throws -> MaskSet?,
                _ stats: UnsafeMutablePointer<ijepa_step_stats>?) throws {
    let b = try box(m)
    let B = try checkBatch(batch)
    let img = try checkImages(images, b.model, B)
    let mk = try masks(b, B)
    if let microBatch {
        writeStats(try b.model.trainStep(images: img, batch: B, microBatch: Int(microBatch), masks: mk, ragged: ragged), stats)
    } else {
        writeStats(try b.model.trainStep(images: img, batch: B, masks: mk, ragged: ragged), stats)
    }
}

/// The same for the forward_backward entry points (gradients: overwritten with weight × this
/// batch's, or that added when accumulate); any error leaves none pending.
func forwardBackwardC(_ m: OpaquePointer?, _ images: UnsafePointer<Float>?, _ batch: Int32, ragged: Bool?,
                      accumulate: Bool = false, weight: Float = 1, _ masks: (ModelBox, Int) throws -> MaskSet?,
                      _ loss: UnsafeMutablePointer<Float>?) throws {
    let b = try box(m)
    try droppingGradientsOnError(b) {
        let B = try checkBatch(batch)
        let img = try checkImages(images, b.model, B)
        let mk = try masks(b, B)
        // (evaluated before the assignment: `loss?.pointee = try …` would skip the call for NULL)
        let l = try b.model.forwardBackward(images: img, batch: B, masks: mk, ragged: ragged, accumulate: accumulate,
                                            weight: weight)
        loss?.pointee = l
    }
}

@c @implementation
public func ijepa_train_step(_ m: OpaquePointer?, _ images: UnsafePointer<Float>?, _ batch: Int32,
                             _ masks: UnsafePointer<ijepa_masks>?, _ stats: UnsafeMutablePointer<ijepa_step_stats>?) -> Int32 {
    guarded { try trainStepC(m, images, batch, ragged: nil, { try masksFromC(masks, $0, batch: $1) }, stats) }
}

@c @implementation
public func ijepa_forward_backward(_ m: OpaquePointer?, _ images: UnsafePointer<Float>?, _ batch: Int32,
                                   _ masks: UnsafePointer<ijepa_masks>?, _ loss: UnsafeMutablePointer<Float>?) -> Int32 {
    guarded { try forwardBackwardC(m, images, batch, ragged: nil, { try masksFromC(masks, $0, batch: $1) }, loss) }
}

@c @implementation
public func ijepa_train_step_ragged(_ m: OpaquePointer?, _ images: UnsafePointer<Float>?, _ batch: Int32,
                                    _ masks: UnsafePointer<ijepa_ragged_masks>?,
                                    _ stats: UnsafeMutablePointer<ijepa_step_stats>?) -> Int32 {
    guarded { try trainStepC(m, images, batch, ragged: true, { try raggedMasksFromC(masks, $0, batch: $1) }, stats) }
}

@c @implementation
public func ijepa_forward_backward_ragged(_ m: OpaquePointer?, _ images: UnsafePointer<Float>?, _ batch: Int32,
                                          _ masks: UnsafePointer<ijepa_ragged_masks>?, _ loss: UnsafeMutablePointer<Float>?) -> Int32 {
    guarded { try forwardBackwardC(m, images, batch, ragged: true, { try raggedMasksFromC(masks, $0, batch: $1) }, loss) }
}

@c @implementation
public func ijepa_train_step_accumulate(_ m: OpaquePointer?, _ images: UnsafePointer<Float>?, _ batch: Int32,
                                        _ micro_batch: Int32, _ masks: UnsafePointer<ijepa_masks>?,
                                        _ stats: UnsafeMutablePointer<ijepa_step_stats>?) -> Int32 {
    guarded {
        try trainStepC(m, images, batch, microBatch: micro_batch, ragged: nil, { try masksFromC(masks, $0, batch: $1) }, stats)
    }
}

@c @implementation
public func ijepa_train_step_accumulate_ragged(_ m: OpaquePointer?, _ images: UnsafePointer<Float>?, _ batch: Int32,
                                               _ micro_batch: Int32, _ masks: UnsafePointer<ijepa_ragged_masks>?,
                                               _ stats: UnsafeMutablePointer<ijepa_step_stats>?) -> Int32 {
    guarded {
        try trainStepC(m, images, batch, microBatch: micro_batch, ragged: true,
                       { try raggedMasksFromC(masks, $0, batch: $1) }, stats)
    }
}

@c @implementation
public func ijepa_forward_backward_accumulate(_ m: OpaquePointer?, _ images: UnsafePointer<Float>?, _ batch: Int32,
                                              _ masks: UnsafePointer<ijepa_masks>?, _ weight: Float, _ accumulate: Int32,
                                              _ loss: UnsafeMutablePointer<Float>?) -> Int32 {
    guarded {
        try forwardBackwardC(m, images, batch, ragged: nil, accumulate: accumulate != 0, weight: weight,
                             { try masksFromC(masks, $0, batch: $1) }, loss)
    }
}

@c @implementation
public func ijepa_forward_backward_accumulate_ragged(_ m: OpaquePointer?, _ images: UnsafePointer<Float>?, _ batch: Int32,
                                                     _ masks: UnsafePointer<ijepa_ragged_masks>?, _ weight: Float,
                                                     _ accumulate: Int32, _ loss: UnsafeMutablePointer<Float>?) -> Int32 {
    guarded {
        try forwardBackwardC(m, images, batch, ragged: true, accumulate: accumulate != 0, weight: weight,
                             { try raggedMasksFromC(masks, $0, batch: $1) }, loss)
    }
}

@c @implementation
public func ijepa_optimizer_step(_ m: OpaquePointer?, _ stats: UnsafeMutablePointer<ijepa_step_stats>?) -> Int32 {
    guarded {
        let b = try box(m)
        writeStats(try b.model.optimizerStep(), stats)
    }
}

@c @implementation
public func ijepa_set_schedule_override(_ m: OpaquePointer?, _ lr: Float, _ weight_decay: Float, _ ema_momentum: Float) -> Int32 {
    guarded {
        let b = try box(m)
        for (v, n) in [(lr, "lr"), (weight_decay, "weight_decay"), (ema_momentum, "ema_momentum")] where v.isNaN || v.isInfinite {
            throw invalid("\(n) must be finite (negative = use the schedule), got \(v)")
        }
        if ema_momentum > 1 { throw invalid("ema_momentum must be <= 1, got \(ema_momentum)") }
        b.model.overrideLR = lr
        b.model.overrideWD = weight_decay
        b.model.overrideEMA = ema_momentum
    }
}

// MARK: buffers

func checkWhich(_ which: Int32) throws {
    if which < 0 || which > 4 { throw invalid("which must be one of IJEPA_BUF_PARAMS..IJEPA_BUF_ADAM_V (0..4), got \(which)") }
}

@c @implementation
public func ijepa_model_buffer(_ m: OpaquePointer?, _ which: Int32, _ n_floats: UnsafeMutablePointer<Int>?) -> UnsafeMutablePointer<Float>? {
    var result: UnsafeMutablePointer<Float>? = nil
    _ = guarded {
        let b = try box(m)
        try checkWhich(which)
        let mdl = b.model
        let (buf, n): (FloatBuffer, Int)
        switch which {
        case 0: (buf, n) = (mdl.params, mdl.layout.totalCount)
        case 1: (buf, n) = (mdl.grads, mdl.layout.totalCount)
        case 2: (buf, n) = (mdl.target, mdl.layout.encoderCount)
        case 3: (buf, n) = (mdl.adamM, mdl.layout.totalCount)
        default: (buf, n) = (mdl.adamV, mdl.layout.totalCount)
        }
        n_floats?.pointee = n
        result = buf.ptr
    }
    return result
}

@c @implementation
public func ijepa_model_num_tensors(_ m: OpaquePointer?, _ which: Int32) -> Int32 {
    var r: Int32 = -1
    _ = guarded {
        let b = try box(m)
        try checkWhich(which)
        r = Int32(which == 2 ? b.names[1].count : b.names[0].count)
    }
    return r
}

@c @implementation
public func ijepa_model_tensor_info(_ m: OpaquePointer?, _ which: Int32, _ index: Int32, _ out: UnsafeMutablePointer<ijepa_tensor_info>?) -> Int32 {
    guarded {
        let b = try box(m)
        try checkWhich(which)
        guard let out else { throw invalid("out is NULL") }
        let list = which == 2 ? b.model.layout.targetTensors : b.model.layout.tensors
        let names = which == 2 ? b.names[1] : b.names[0]
        if index < 0 || Int(index) >= list.count { throw invalid("index must be in 0..<\(list.count), got \(index)") }
        let t = list[Int(index)]
        var shape: [Int64] = t.shape.map(Int64.init)
        while shape.count < 4 { shape.append(1) }
        out.pointee = ijepa_tensor_info(name: UnsafePointer(names[Int(index)]), ndim: Int32(t.shape.count),
                                        shape: (shape[0], shape[1], shape[2], shape[3]), offset: t.offset)
    }
}

// MARK: inference

@c @implementation
public func ijepa_encode(_ m: OpaquePointer?, _ images: UnsafePointer<Float>?, _ batch: Int32, _ which_encoder: Int32,
                         _ tokens: UnsafeMutablePointer<Float>?, _ pooled: UnsafeMutablePointer<Float>?) -> Int32 {
    guarded {
        let b = try box(m)
        let B = try checkBatch(batch)
        let img = try checkImages(images, b.model, B)
        guard let kind = EncoderKind(rawValue: Int(which_encoder)) else {
            throw invalid("which_encoder must be IJEPA_TARGET_ENCODER (0) or IJEPA_CONTEXT_ENCODER (1), got \(which_encoder)")
        }
        if tokens == nil && pooled == nil { throw invalid("tokens and pooled are both NULL: nothing to write") }
        try b.model.encode(images: img, batch: B, encoder: kind, tokens: tokens, pooled: pooled)
    }
}

@c @implementation
public func ijepa_encode_layers(_ m: OpaquePointer?, _ images: UnsafePointer<Float>?, _ batch: Int32, _ which_encoder: Int32,
                                _ last_k: Int32, _ pooled: UnsafeMutablePointer<Float>?) -> Int32 {
    guarded {
        let b = try box(m)
        let B = try checkBatch(batch)
        let img = try checkImages(images, b.model, B)
        guard let kind = EncoderKind(rawValue: Int(which_encoder)) else {
            throw invalid("which_encoder must be IJEPA_TARGET_ENCODER (0) or IJEPA_CONTEXT_ENCODER (1), got \(which_encoder)")
        }
        guard let pooled else { throw invalid("pooled is NULL") }
        try b.model.encodeLayers(images: img, batch: B, encoder: kind, lastK: Int(last_k), pooled: pooled)
    }
}
