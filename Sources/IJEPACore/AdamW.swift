import Glibc

// AdamW as torch.optim.AdamW (single-tensor path): decoupled decay, bias-corrected moments.

public struct AdamWHyper: Sendable {
    public var beta1: Double = 0.9
    public var beta2: Double = 0.999
    public var eps: Double = 1e-8
    public init() {}
}

/// One AdamW update of n parameters. `step` is the 1-based step count after this update.
func adamwUpdate(_ p: FPtr, _ g: CFPtr, _ m: FPtr, _ v: FPtr, _ n: Int,
                 lr: Double, weightDecay: Double, step: Int64, _ h: AdamWHyper) {
    let decay = Float(1.0 - lr * weightDecay)
    let b1 = Float(h.beta1), b2 = Float(h.beta2)
    let omb1 = Float(1.0 - h.beta1), omb2 = Float(1.0 - h.beta2)
    let bc1 = 1.0 - pow(h.beta1, Double(step))
    let bc2sqrt = Float((1.0 - pow(h.beta2, Double(step))).squareRoot())
    let stepSize = Float(lr / bc1)
    let eps = Float(h.eps)
    for i in 0..<n {
        let gi = g[i]
        let pi = weightDecay != 0 ? p[i] * decay : p[i]
        let mi = m[i] + omb1 * (gi - m[i])          // exp_avg.lerp_(grad, 1 - beta1)
        let vi = v[i] * b2 + omb2 * gi * gi        // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2)
        m[i] = mi
        v[i] = vi
        let denom = vi.squareRoot() / bc2sqrt + eps
        p[i] = pi - stepSize * (mi / denom)
        _ = b1
    }
}

/// True when `adamwUpdate` with the same arguments would leave every parameter and moment
/// finite. Reads only (same float operations as the update, so the answer is exact): the model
/// runs it before the update so that an overflowing learning rate or weight decay is an error
/// with nothing changed, not a model full of Inf. x − x is 0 for finite x and NaN otherwise.
func adamwUpdateStaysFinite(_ p: CFPtr, _ g: CFPtr, _ m: CFPtr, _ v: CFPtr, _ n: Int,
                            lr: Double, weightDecay: Double, step: Int64, _ h: AdamWHyper) -> Bool {
    let decay = Float(1.0 - lr * weightDecay)
    let b2 = Float(h.beta2)
    let omb1 = Float(1.0 - h.beta1), omb2 = Float(1.0 - h.beta2)
    let bc1 = 1.0 - pow(h.beta1, Double(step))
    let bc2sqrt = Float((1.0 - pow(h.beta2, Double(step))).squareRoot())
    let stepSize = Float(lr / bc1)
    let eps = Float(h.eps)
    if !decay.isFinite || !stepSize.isFinite { return false }
    var acc = Float(0)
    for i in 0..<n {
        let gi = g[i]
        let pi = weightDecay != 0 ? p[i] * decay : p[i]
        let mi = m[i] + omb1 * (gi - m[i])
        let vi = v[i] * b2 + omb2 * gi * gi
        let denom = vi.squareRoot() / bc2sqrt + eps
        let pn = pi - stepSize * (mi / denom)
        acc += (pn - pn) + (mi - mi) + (vi - vi)
    }
    return acc == 0
}
