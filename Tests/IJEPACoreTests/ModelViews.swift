@testable import IJEPACore

// Copies of a training step's intermediate tensors, for comparing them with the PyTorch
// fixtures (test-only: the engine keeps these buffers for its own use).
extension Model {
    /// Copies of the last forward_backward's intermediate tensors: "target_rows" [R, D] (the
    /// target encoder's outputs, final norm included, on the R patches some target block uses:
    /// image by image, ascending patch index; until the next encode, which reuses the buffer),
    /// "pred_out" [npred*nenc*B, Kt, D], "ctx_out" [nenc*B, Kc, D] (ragged: the contexts' rows one
    /// after the other, [Σ lengths, D]); "targets" [npred*nenc*B, Kt, D] only with `keepTargets` (their
    /// buffer otherwise holds the loss gradient after the step).
    func lastTensor(_ name: String) -> [Float]? {
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
