internal import IJEPACore

/// Statistics of one optimizer step (`ijepa_step_stats`).
public struct StepStats: Sendable, Hashable, Codable, CustomStringConvertible {
    /// Optimizer steps taken, counting this one.
    public var step: Int64
    /// Loss of the forward/backward this step consumed (smooth L1, averaged as officially).
    public var loss: Float
    /// Learning rate this step used (from the schedule or the override).
    public var lr: Float
    /// Weight decay this step used.
    public var weightDecay: Float
    /// EMA momentum this step used for the target encoder.
    public var emaMomentum: Float
    /// L2 norm of the gradients this step consumed (no clipping is applied, as officially).
    public var gradNorm: Float

    /// Stats from their fields.
    public init(step: Int64, loss: Float, lr: Float, weightDecay: Float, emaMomentum: Float, gradNorm: Float) {
        self.step = step
        self.loss = loss
        self.lr = lr
        self.weightDecay = weightDecay
        self.emaMomentum = emaMomentum
        self.gradNorm = gradNorm
    }

    init(_ s: IJEPACore.StepStats) {
        self.init(step: s.step, loss: s.loss, lr: s.lr, weightDecay: s.weightDecay,
                  emaMomentum: s.emaMomentum, gradNorm: s.gradNorm)
    }

    /// "step 3 loss 0.1234 lr 0.0002 wd 0.04 ema 0.996 |g| 1.5".
    public var description: String {
        "step \(step) loss \(loss) lr \(lr) wd \(weightDecay) ema \(emaMomentum) |g| \(gradNorm)"
    }
}

/// An I-JEPA model with everything training needs: the context encoder and predictor
/// (trained), the target encoder (their EMA, the one the paper evaluates), AdamW state, the
/// schedules' step counter and the seeded mask generator. Semantics are those of the official
/// `facebookresearch/ijepa` training step.
///
/// ```swift
/// let model = try Model(config: .preset(.tiny32))
/// for _ in 0..<100 {
///     let stats = try model.trainStep(images: batch, batch: 16)   // masks sampled for you
///     print(stats.loss)
/// }
/// let features = try model.encode(images: batch, batch: 16)     // [16 * embedDim], target encoder
/// try model.save(to: "ijepa.safetensors")
/// ```
///
/// **Images** are float32 NCHW, `[batch][inChans][imageSize][imageSize]`, already normalized.
/// Every method taking images checks that their count is exactly
/// `batch * inChans * imageSize * imageSize` and throws `IJEPAError.shape` otherwise; NaN or
/// Inf anywhere throws `IJEPAError.numeric`. Bad input never traps.
///
/// **Errors** are `IJEPAError` (typed throws). A method that throws leaves the model as it
/// was — parameters, optimizer state, target encoder, step counter and mask generator — except
/// that the gradient buffer's contents are then unspecified and no gradients are pending.
///
/// **Threads**: one thread at a time per model. Calls on one model must not overlap, including
/// the closures of `withBuffer` and friends; distinct models are fully independent and may be
/// used from different threads concurrently. The class is not `Sendable`; move a model to
/// another task rather than sharing it. The kernels of one call run on `nThreads` threads of
/// the model's own pool.
public final class Model: CustomStringConvertible {
    let core: IJEPACore.Model
    /// Names, shapes and offsets of the PARAMS-layout buffers and of the TARGET buffer.
    let parameterTensorInfos: [TensorInfo]
    let targetTensorInfos: [TensorInfo]

    /// Which encoder `encode` and `encodeTokens` run.
    public enum Encoder: Sendable, Hashable, CaseIterable {
        /// The target encoder (the EMA of the context encoder): the one the paper evaluates.
        case target
        /// The context encoder, the one the optimizer trains.
        case context

        var core: EncoderKind { self == .target ? .target : .context }
    }

    /// Creates a model initialized as the official training path does (Linear and conv
    /// weights and the mask token N(0, 0.02²), biases 0, LayerNorms 1/0, target encoder = an
    /// exact copy of the encoder), reproducibly from `config.seed`.
    /// - Throws: `IJEPAError.invalidArgument` for an invalid config (see `Config.validate()`),
    ///   `.outOfMemory` if the parameters and optimizer state exceed the machine's memory.
    public init(config: Config) throws(IJEPAError) {
        let c = config.core
        let m = try engine { try IJEPACore.Model(config: c) }
        core = m
        parameterTensorInfos = m.layout.tensors.map(TensorInfo.init)
        targetTensorInfos = m.layout.targetTensors.map(TensorInfo.init)
    }

    private init(core m: IJEPACore.Model) {
        core = m
        parameterTensorInfos = m.layout.tensors.map(TensorInfo.init)
        targetTensorInfos = m.layout.targetTensors.map(TensorInfo.init)
    }

    // MARK: checkpoints

    /// Creates a model from a checkpoint written by `save(to:trainingState:)` (or by the C
    /// ABI's `ijepa_model_save`): the config comes from the file's metadata, and the training
    /// state (AdamW moments, step counter, mask generator, schedule overrides) is restored when
    /// the file has it, so that training resumes bit for bit.
    /// - Parameters:
    ///   - path: a safetensors file.
    ///   - nThreads: threads for the new model (<= 0: all cores); `nil` keeps the saved value.
    /// - Throws: `IJEPAError.io` if the file cannot be read, `.format` if it is not a valid
    ///   checkpoint of this library (the message names the problem), `.numeric` for non-finite
    ///   values.
    public static func load(contentsOf path: String, nThreads: Int? = nil) throws(IJEPAError) -> Model {
        Model(core: try engine { try IJEPACore.Model.load(from: path, nThreads: nThreads) })
    }

    /// Saves the model as a safetensors file with the official state_dict names under
    /// `encoder.`, `predictor.` and `target_encoder.` (PyTorch reads it with
    /// `safetensors.torch.load_file`) and the config in the metadata.
    ///
    /// The write is atomic: a temporary file next to `path` is written, fsynced and renamed over
    /// `path`, so an interruption leaves either the old file or the new one.
    /// - Parameter trainingState: also save the AdamW moments, the step counter, the mask
    ///   generator state and the schedule overrides, so that `load(contentsOf:)` resumes
    ///   training exactly.
    /// - Throws: `IJEPAError.invalidArgument` for an empty path, `.io` if the file cannot be
    ///   written.
    public func save(to path: String, trainingState: Bool = false) throws(IJEPAError) {
        let flags: SaveFlags = trainingState ? [.weights, .trainingState] : [.weights]
        try engine { try core.save(to: path, flags: flags) }
    }

    /// Copies weights from any safetensors file with the official names into this model (for
    /// instance one converted from an official `.pth.tar` by `tools/convert_official.py`).
    /// Names may carry DDP's `module.` component. The training state (step, optimizer, masks)
    /// is not touched; pending gradients are dropped.
    /// - Parameter strict: `true`: every encoder, predictor and target-encoder tensor must be
    ///   present and nothing unexpected may be; `false`: what is missing is left as it is.
    /// - Throws: `.io`, `.format` (missing, unexpected or mis-shaped tensors, named in the
    ///   message) or `.numeric`. On any error the model is unchanged.
    public func loadWeights(from path: String, strict: Bool = true) throws(IJEPAError) {
        try engine { try core.loadWeights(from: path, strict: strict) }
    }

    // MARK: properties

    /// The model's config; `nThreads` is the thread count in use (see `nThreads`).
    public var config: Config { Config(core.config) }

    /// Optimizer steps taken so far (the schedules' counter).
    public var step: Int64 { core.step }

    /// Patches per image, N.
    public var numPatches: Int { core.config.numPatches }

    /// Patches per image side (`imageSize / patchSize`).
    public var gridSize: Int { core.config.gridSize }

    /// Encoder width, D: the length of one feature vector.
    public var embedDim: Int { core.config.embedDim }

    /// Floats in one input image, `inChans * imageSize * imageSize`.
    public var floatsPerImage: Int { core.config.inChans * core.config.imageSize * core.config.imageSize }

    /// Threads used by this model's kernels (always >= 1).
    public var nThreads: Int { core.nThreads }

    /// Sets the threads of this model's kernels: <= 0 means all cores; more than 1024 is
    /// `.invalidArgument` (the same rule as the C ABI and the config).
    public func setThreads(_ n: Int) throws(IJEPAError) { try core.setThreads(n) }

    /// Whether a `forwardBackward` has produced gradients that no `optimizerStep` has consumed.
    public var hasPendingGradients: Bool { core.gradsReady }

    /// Trainable floats (context encoder + predictor): the length of the parameters,
    /// gradients and AdamW buffers.
    public var parameterCount: Int { core.layout.totalCount }

    /// Floats in the target encoder.
    public var targetParameterCount: Int { core.layout.encoderCount }

    /// "IJEPA.Model(224px/16, D 192 x 12, predictor 384 x 6, step 0)".
    public var description: String {
        let c = core.config
        return "IJEPA.Model(\(c.imageSize)px/\(c.patchSize), D \(c.embedDim) x \(c.depth), "
            + "predictor \(c.predEmbedDim) x \(c.predDepth), step \(core.step))"
    }

    // MARK: masks

    /// Samples the masks of the next batch from the model's own seeded generator (the official
    /// multi-block collator: 1 context block minus 4 target blocks by default), and advances it.
    /// `trainStep(images:batch:masks: nil)` does the same internally.
    /// - Throws: `IJEPAError.invalidArgument` if `batch` is not in 1...2^20, or if this batch's
    ///   blocks cannot hold more than `minKeep` patches (where the official sampler would hang).
    public func sampleMasks(batch: Int) throws(IJEPAError) -> Masks {
        try Self.checkBatch(batch)
        return Masks(try engine { try core.sampleMasks(batch: batch, ragged: false) })
    }

    /// The same draws as `sampleMasks(batch:)`, but with `ragged` every image keeps its whole
    /// context (not the official cut to the batch's shortest); the result's `encLengths` gives
    /// each context's length. Ragged masks are accepted wherever masks are.
    public func sampleMasks(batch: Int, ragged: Bool) throws(IJEPAError) -> Masks {
        try Self.checkBatch(batch)
        return Masks(try engine { try core.sampleMasks(batch: batch, ragged: ragged) })
    }

    // MARK: training

    /// One official training step: the schedules advance, the target encoder encodes the full
    /// images, the context encoder and predictor predict the target blocks, smooth-L1 loss,
    /// backward, AdamW, EMA update of the target encoder.
    /// - Parameters:
    ///   - images: `batch * inChans * imageSize * imageSize` floats, NCHW, normalized.
    ///   - masks: `nil` samples them from the model's generator (see `sampleMasks(batch:)`).
    /// - Throws: `.invalidArgument` (batch not in 1...2^20, bad mask indices), `.shape` (image
    ///   count, mask sizes), `.numeric` (NaN/Inf in images, loss or gradients: nothing updated).
    @discardableResult
    public func trainStep(images: UnsafeBufferPointer<Float>, batch: Int, masks: Masks? = nil)
        throws(IJEPAError) -> StepStats
    {
        let img = try checkImages(images, batch)
        // (the engine samples nil masks, and on any error restores the mask stream)
        let mk = masks?.core
        return StepStats(try engine { try core.trainStep(images: img, batch: batch, masks: mk) })
    }

    /// One official training step on images in an array; see the `UnsafeBufferPointer` overload.
    @discardableResult
    public func trainStep(images: [Float], batch: Int, masks: Masks? = nil) throws(IJEPAError) -> StepStats {
        try withImages(images) { (b) throws(IJEPAError) in try trainStep(images: b, batch: batch, masks: masks) }
    }

    /// One optimizer step over `batch` images run as micro-batches of at most `microBatch`
    /// images (gradient accumulation): a step of the paper's batch of 2048 with the activation
    /// memory of one micro-batch. The masks of the whole step are one draw for all `batch`
    /// images (`nil`: the model's generator, with the official cut to the batch minimum over the
    /// whole batch, or ragged contexts when `config.raggedContext` says so), each micro-batch
    /// takes its images' rows and adds its gradient weighted by its share of the batch (b / B),
    /// then one optimizer step: the same step as `trainStep(images:batch:masks:)` to float
    /// rounding (`docs/accumulation.md` has the measured differences).
    /// - Parameters:
    ///   - images: all `batch` images, `batch * inChans * imageSize * imageSize` floats.
    ///   - microBatch: images per forward/backward, >= 1 (the last one may be smaller; a value
    ///     >= `batch` runs one).
    ///   - masks: the whole batch's masks (uniform or ragged), or `nil` to sample them.
    /// - Throws: `.invalidArgument` for `microBatch` < 1, otherwise as
    ///   `trainStep(images:batch:masks:)`; a failure in any micro-batch (NaN in its images, say)
    ///   leaves the model and the mask generator as they were.
    @discardableResult
    public func trainStep(images: UnsafeBufferPointer<Float>, batch: Int, microBatch: Int, masks: Masks? = nil)
        throws(IJEPAError) -> StepStats
    {
        let img = try checkImages(images, batch)
        if microBatch < 1 { throw IJEPAError.invalidArgument("microBatch must be >= 1, got \(microBatch)") }
        let mk = masks?.core
        // (the engine samples the whole batch's masks itself and restores the generator on failure)
        return StepStats(try engine { try core.trainStep(images: img, batch: batch, microBatch: microBatch, masks: mk) })
    }

    /// A training step as micro-batches, images in an array; see the `UnsafeBufferPointer` overload.
    @discardableResult
    public func trainStep(images: [Float], batch: Int, microBatch: Int, masks: Masks? = nil)
        throws(IJEPAError) -> StepStats
    {
        try withImages(images) { (b) throws(IJEPAError) in
            try trainStep(images: b, batch: batch, microBatch: microBatch, masks: masks)
        }
    }

    /// The first half of a training step: forward and backward of the loss, which set the
    /// gradient buffer. Between this and `optimizerStep()` the gradients may be changed through
    /// `withGradients` — for instance all-reduced across data-parallel replicas.
    /// Parameters, target encoder and step counter are not changed.
    ///
    /// Gradient accumulation by hand: the gradient buffer is set to `weight` × this batch's
    /// gradient, or with `accumulate` that is added to the gradients pending from the previous
    /// `forwardBackward` of the same step. For micro-batch k of b_k images of a step of B images,
    /// `weight` is b_k / B (every image holds the same number of loss elements) and its masks are
    /// its rows of one draw for all B images; the sum is then the whole batch's gradient.
    /// - Parameters:
    ///   - weight: finite and > 0 (default 1).
    ///   - accumulate: add to the pending gradients instead of overwriting them (not for the
    ///     first batch of a step).
    /// - Returns: this batch's own loss (unweighted).
    /// - Throws: as `trainStep`; `.state` if `accumulate` is set but no gradients are pending;
    ///   `.invalidArgument` for a weight that is not finite and positive. After any failure no
    ///   gradients are pending.
    @discardableResult
    public func forwardBackward(images: UnsafeBufferPointer<Float>, batch: Int, masks: Masks? = nil,
                                weight: Float = 1, accumulate: Bool = false) throws(IJEPAError) -> Float
    {
        do throws(IJEPAError) {
            let img = try checkImages(images, batch)
            let mk = masks?.core
            return try engine {
                try core.forwardBackward(images: img, batch: batch, masks: mk, accumulate: accumulate, weight: weight)
            }
        } catch {
            core.invalidateGradients()
            throw error
        }
    }

    /// The first half of a training step on images in an array; see the
    /// `UnsafeBufferPointer` overload.
    @discardableResult
    public func forwardBackward(images: [Float], batch: Int, masks: Masks? = nil, weight: Float = 1,
                                accumulate: Bool = false) throws(IJEPAError) -> Float
    {
        try withImages(images) { (b) throws(IJEPAError) in
            try forwardBackward(images: b, batch: batch, masks: masks, weight: weight, accumulate: accumulate)
        }
    }

    /// The second half of a training step: the schedules advance, AdamW updates the context
    /// encoder and predictor with the current gradients, the target encoder takes its EMA step.
    /// - Throws: `IJEPAError.state` if no `forwardBackward` produced gradients since the last
    ///   optimizer step; `.numeric` if the gradients contain NaN/Inf (nothing is updated).
    public func optimizerStep() throws(IJEPAError) -> StepStats {
        StepStats(try engine { try core.optimizerStep() })
    }

    /// Fixed values that replace the schedules; `nil` means "use the schedule".
    public struct ScheduleOverride: Sendable, Hashable {
        /// Learning rate, or `nil` for the warmup-cosine schedule.
        public var lr: Float?
        /// Weight decay, or `nil` for the cosine schedule.
        public var weightDecay: Float?
        /// EMA momentum, or `nil` for the linear schedule.
        public var emaMomentum: Float?

        /// Overrides from their values (`nil` = the schedule).
        public init(lr: Float? = nil, weightDecay: Float? = nil, emaMomentum: Float? = nil) {
            self.lr = lr
            self.weightDecay = weightDecay
            self.emaMomentum = emaMomentum
        }
    }

    /// The current overrides (all `nil` unless `setScheduleOverride` set them; saved and
    /// restored with the training state).
    public var scheduleOverride: ScheduleOverride {
        func v(_ x: Float) -> Float? { x >= 0 ? x : nil }
        return ScheduleOverride(lr: v(core.overrideLR), weightDecay: v(core.overrideWD),
                                emaMomentum: v(core.overrideEMA))
    }

    /// Overrides the learning rate, weight decay and EMA momentum of the following optimizer
    /// steps (all three are set by each call); `nil` returns that quantity to its schedule.
    /// The schedules' step counter keeps advancing either way.
    /// - Throws: `IJEPAError.invalidArgument` for a value that is not finite or negative, or an
    ///   EMA momentum above 1. Nothing is changed then.
    public func setScheduleOverride(lr: Float? = nil, weightDecay: Float? = nil, emaMomentum: Float? = nil)
        throws(IJEPAError)
    {
        for (v, n) in [(lr, "lr"), (weightDecay, "weightDecay"), (emaMomentum, "emaMomentum")] {
            if let v, !(v.isFinite && v >= 0) {
                throw IJEPAError.invalidArgument("\(n) override must be finite and >= 0 (nil = use the schedule), got \(v)")
            }
        }
        if let emaMomentum, emaMomentum > 1 {
            throw IJEPAError.invalidArgument("emaMomentum override must be <= 1, got \(emaMomentum)")
        }
        core.overrideLR = lr ?? -1
        core.overrideWD = weightDecay ?? -1
        core.overrideEMA = emaMomentum ?? -1
    }

    // MARK: inference

    /// Features of full images: the mean over the N patch tokens of the chosen encoder's
    /// output (after its final LayerNorm).
    /// - Returns: `batch * embedDim` floats, `[batch][embedDim]`.
    /// - Throws: `.invalidArgument` (batch), `.shape` (image count), `.numeric` (NaN/Inf images).
    public func encode(images: UnsafeBufferPointer<Float>, batch: Int, encoder: Encoder = .target)
        throws(IJEPAError) -> [Float]
    {
        try run(images, batch, encoder, tokens: false)
    }

    /// Pooled features of images in an array; see the `UnsafeBufferPointer` overload.
    public func encode(images: [Float], batch: Int, encoder: Encoder = .target) throws(IJEPAError) -> [Float] {
        try withImages(images) { (b) throws(IJEPAError) in try run(b, batch, encoder, tokens: false) }
    }

    /// Evaluation features of the last `lastK` blocks (the paper probes the last block or the
    /// last 4 concatenated): each block's output through the encoder's final norm, averaged over
    /// the patches, concatenated earliest block first.
    /// - Returns: `batch * lastK * embedDim` floats, `[batch][lastK][embedDim]`; lastK 1 equals `encode`.
    /// - Throws: `.invalidArgument` unless 1 <= lastK <= depth; otherwise as `encode`.
    public func encodeLayers(images: [Float], batch: Int, lastK: Int, encoder: Encoder = .target)
        throws(IJEPAError) -> [Float]
    {
        try IJEPACore.Model.checkLastK(lastK, depth: core.config.depth)   // before the output is allocated
        return try withImages(images) { (b) throws(IJEPAError) in
            let img = try checkImages(b, batch)
            let (n, overflow) = batch.multipliedReportingOverflow(by: lastK * core.config.embedDim)
            if overflow { throw IJEPAError.outOfMemory("\(batch) x \(lastK) x embedDim output floats overflow") }
            var out = [Float](repeating: 0, count: n)
            let m = core, kind = encoder.core
            try engine {
                try out.withUnsafeMutableBufferPointer { o in
                    try m.encodeLayers(images: img, batch: batch, encoder: kind, lastK: lastK, pooled: o.baseAddress!)
                }
            }
            return out
        }
    }

    /// Patch-token features of full images: the chosen encoder's output after its final
    /// LayerNorm.
    /// - Returns: `batch * numPatches * embedDim` floats, `[batch][numPatches][embedDim]`.
    /// - Throws: as `encode`.
    public func encodeTokens(images: UnsafeBufferPointer<Float>, batch: Int, encoder: Encoder = .target)
        throws(IJEPAError) -> [Float]
    {
        try run(images, batch, encoder, tokens: true)
    }

    /// Patch-token features of images in an array; see the `UnsafeBufferPointer` overload.
    public func encodeTokens(images: [Float], batch: Int, encoder: Encoder = .target) throws(IJEPAError) -> [Float] {
        try withImages(images) { (b) throws(IJEPAError) in try run(b, batch, encoder, tokens: true) }
    }

    // MARK: internals

    /// The engine's batch rule, before any size is computed from the batch.
    static func checkBatch(_ batch: Int) throws(IJEPAError) { try IJEPACore.Model.checkBatch(batch) }

    /// Checks batch and image count; returns the images' base address.
    private func checkImages(_ images: UnsafeBufferPointer<Float>, _ batch: Int) throws(IJEPAError)
        -> UnsafePointer<Float>
    {
        try Self.checkBatch(batch)
        let c = core.config
        let per = c.inChans * c.imageSize * c.imageSize
        let (expected, overflow) = batch.multipliedReportingOverflow(by: per)
        guard !overflow, images.count == expected, let base = images.baseAddress else {
            throw IJEPAError.shape(
                "images has \(images.count) floats, expected batch*in_chans*image_size*image_size = "
                    + "\(batch)*\(c.inChans)*\(c.imageSize)*\(c.imageSize)"
                    + (overflow ? " (overflows)" : " = \(expected)"))
        }
        return base
    }

    private func run(_ images: UnsafeBufferPointer<Float>, _ batch: Int, _ encoder: Encoder, tokens: Bool)
        throws(IJEPAError) -> [Float]
    {
        let img = try checkImages(images, batch)
        let c = core.config
        let per = tokens ? c.numPatches * c.embedDim : c.embedDim
        let (n, overflow) = batch.multipliedReportingOverflow(by: per)
        if overflow { throw IJEPAError.outOfMemory("\(batch) x \(per) output floats overflow") }
        var out = [Float](repeating: 0, count: n)
        let m = core, kind = encoder.core
        try engine {
            try out.withUnsafeMutableBufferPointer { o in
                try m.encode(images: img, batch: batch, encoder: kind,
                             tokens: tokens ? o.baseAddress : nil, pooled: tokens ? nil : o.baseAddress)
            }
        }
        return out
    }
}

/// `array.withUnsafeBufferPointer` with a typed-throwing body.
func withImages<R>(_ a: [Float], _ body: (UnsafeBufferPointer<Float>) throws(IJEPAError) -> R)
    throws(IJEPAError) -> R
{
    var result: Result<R, IJEPAError>?
    a.withUnsafeBufferPointer { b in
        do throws(IJEPAError) { result = .success(try body(b)) } catch { result = .failure(error) }
    }
    return try result!.get()
}
