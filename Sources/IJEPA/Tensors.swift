internal import IJEPACore

/// One named tensor inside a model buffer.
///
/// Names are the official state_dict keys with a prefix: `encoder.` and `predictor.` in the
/// parameter-layout buffers (parameters, gradients, AdamW moments), `target_encoder.` in the
/// target buffer, e.g. `encoder.blocks.0.attn.qkv.weight`. Shapes are PyTorch's (a Linear
/// weight is `[out, in]`, row-major). The fixed sin-cos position tables are not trainable and
/// are in no buffer.
public struct TensorInfo: Sendable, Hashable {
    /// The official state_dict name with its prefix.
    public var name: String
    /// PyTorch shape, outermost first.
    public var shape: [Int]
    /// Offset of the first float in the buffer.
    public var offset: Int
    /// Number of floats: the product of `shape`.
    public var count: Int
    /// Whether AdamW applies weight decay to it (officially: not biases and not 1-D tensors).
    public var weightDecay: Bool

    /// The tensor's floats within the buffer: `offset ..< offset + count`.
    public var range: Range<Int> { offset..<(offset + count) }

    /// A tensor description from its fields.
    public init(name: String, shape: [Int], offset: Int, count: Int, weightDecay: Bool) {
        self.name = name
        self.shape = shape
        self.offset = offset
        self.count = count
        self.weightDecay = weightDecay
    }

    init(_ t: IJEPACore.TensorInfo) {
        self.init(name: t.name, shape: t.shape, offset: t.offset, count: t.count, weightDecay: t.decay)
    }
}

extension Model {
    /// The model's flat float32 buffers (`IJEPA_BUF_*` of the C ABI). `parameters`,
    /// `gradients`, `adamM` and `adamV` share one layout (`tensorInfos(.parameters)`); `target`
    /// has the encoder part of it under `target_encoder.` names.
    public enum Buffer: Sendable, Hashable, CaseIterable {
        /// Trainable parameters: context encoder then predictor.
        case parameters
        /// Gradients of the last `forwardBackward` (unspecified after a failed call).
        case gradients
        /// The target encoder (EMA of the context encoder).
        case target
        /// AdamW first moments.
        case adamM
        /// AdamW second moments.
        case adamV
    }

    /// The named tensors of a buffer, in buffer order (offsets increase, no gaps).
    public func tensorInfos(_ buffer: Buffer = .parameters) -> [TensorInfo] {
        buffer == .target ? targetTensorInfos : parameterTensorInfos
    }

    /// Number of floats in a buffer.
    public func floatCount(_ buffer: Buffer) -> Int {
        buffer == .target ? core.layout.encoderCount : core.layout.totalCount
    }

    /// Calls `body` with the model's own buffer — no copy — and its tensor layout. Writing
    /// through the pointer changes the model: writing `.parameters` or `.target` sets weights,
    /// writing `.gradients` between `forwardBackward` and `optimizerStep` changes what the step
    /// applies (e.g. an all-reduce across data-parallel replicas).
    ///
    /// The pointer is valid only during `body` and must not escape it. The buffers never move,
    /// but `body` must not call other methods of this model (one thread at a time per model).
    public func withBuffer<R, E: Error>(
        _ buffer: Buffer, _ body: (UnsafeMutableBufferPointer<Float>, [TensorInfo]) throws(E) -> R
    ) throws(E) -> R {
        let b: FloatBuffer
        switch buffer {
        case .parameters: b = core.params
        case .gradients: b = core.grads
        case .target: b = core.target
        case .adamM: b = core.adamM
        case .adamV: b = core.adamV
        }
        let view = UnsafeMutableBufferPointer(start: b.ptr, count: floatCount(buffer))
        return try withExtendedLifetime(core) { () throws(E) -> R in try body(view, tensorInfos(buffer)) }
    }

    /// `withBuffer(.parameters, body)`: the trainable parameters, zero-copy.
    public func withParameters<R, E: Error>(
        _ body: (UnsafeMutableBufferPointer<Float>, [TensorInfo]) throws(E) -> R
    ) throws(E) -> R {
        try withBuffer(.parameters, body)
    }

    /// `withBuffer(.gradients, body)`: the gradients, zero-copy (the all-reduce hook).
    public func withGradients<R, E: Error>(
        _ body: (UnsafeMutableBufferPointer<Float>, [TensorInfo]) throws(E) -> R
    ) throws(E) -> R {
        try withBuffer(.gradients, body)
    }

    /// `withBuffer(.target, body)`: the target encoder, zero-copy.
    public func withTargetParameters<R, E: Error>(
        _ body: (UnsafeMutableBufferPointer<Float>, [TensorInfo]) throws(E) -> R
    ) throws(E) -> R {
        try withBuffer(.target, body)
    }

    /// Copies of every tensor of a buffer, by name.
    public func tensors(_ buffer: Buffer) -> [String: [Float]] {
        withBuffer(buffer) { view, infos in
            var out: [String: [Float]] = [:]
            out.reserveCapacity(infos.count)
            for t in infos { out[t.name] = Array(view[t.range]) }
            return out
        }
    }

    /// Copies of the trainable parameters by name (`encoder.…`, `predictor.…`).
    public func parameters() -> [String: [Float]] { tensors(.parameters) }

    /// Copies of the gradients by name (the same names as `parameters()`).
    public func gradients() -> [String: [Float]] { tensors(.gradients) }

    /// Copies of the target encoder's parameters by name (`target_encoder.…`).
    public func targetParameters() -> [String: [Float]] { tensors(.target) }

    /// A copy of one tensor, or `nil` if the buffer has no tensor of that name.
    public func tensor(named name: String, in buffer: Buffer = .parameters) -> [Float]? {
        guard let t = info(name, buffer) else { return nil }
        return withBuffer(buffer) { view, _ in Array(view[t.range]) }
    }

    /// Overwrites one tensor.
    /// - Throws: `IJEPAError.invalidArgument` if the buffer has no tensor of that name,
    ///   `.shape` if `values.count` is not the tensor's `count`, `.numeric` if a value is NaN
    ///   or infinite. Nothing is written then.
    public func setTensor(named name: String, in buffer: Buffer = .parameters, to values: [Float])
        throws(IJEPAError)
    {
        guard let t = info(name, buffer) else {
            throw IJEPAError.invalidArgument("the \(buffer) buffer has no tensor named '\(name)'")
        }
        guard values.count == t.count else {
            throw IJEPAError.shape("'\(name)' has \(t.count) floats (shape \(t.shape)), got \(values.count)")
        }
        if let bad = values.firstIndex(where: { !$0.isFinite }) {
            throw IJEPAError.numeric("values for '\(name)' contain \(values[bad]) at index \(bad)")
        }
        withBuffer(buffer) { view, _ in
            _ = UnsafeMutableBufferPointer(rebasing: view[t.range]).update(fromContentsOf: values)
        }
    }

    private func info(_ name: String, _ buffer: Buffer) -> TensorInfo? {
        tensorInfos(buffer).first { $0.name == name }
    }
}
