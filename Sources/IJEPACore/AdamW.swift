import Glibc

// AdamW as torch.optim.AdamW (single-tensor path): decoupled decay, bias-corrected moments.
// The update runs 16 lanes at a time with exactly the scalar operations in the scalar order
// (no fused multiply-add), so every element is bit-identical to the one-at-a-time loop.

public struct AdamWHyper: Sendable {
    public var beta1: Double = 0.9
    public var beta2: Double = 0.999
    public var eps: Double = 1e-8
    public init() {}
}

/// The per-step constants of one update, from the hyper-parameters and the 1-based step.
struct AdamWStepConstants {
    let decay: Float, b2: Float, omb1: Float, omb2: Float, bc2sqrt: Float, stepSize: Float, eps: Float
    let decays: Bool
    /// A lane whose new moment |m| is at most mLimit, new v in [0, FLT_MAX] and decayed |p| at
    /// most 1e37 certainly updates to finite values: denom ≥ ε, so |step_size·m/denom| ≤ 9e37.
    let mLimit: Float
    init(lr: Double, weightDecay: Double, step: Int64, _ h: AdamWHyper) {
        decay = Float(1.0 - lr * weightDecay)
        decays = weightDecay != 0
        b2 = Float(h.beta2)
        omb1 = Float(1.0 - h.beta1); omb2 = Float(1.0 - h.beta2)
        let bc1 = 1.0 - pow(h.beta1, Double(step))
        bc2sqrt = Float((1.0 - pow(h.beta2, Double(step))).squareRoot())
        stepSize = Float(lr / bc1)
        eps = Float(h.eps)
        let ss = abs(Double(stepSize))
        mLimit = Float(ss > 0 ? min(1e30, 9e37 * Double(eps) / (ss * 1.000_001)) : 1e30)
    }

    /// The update's first operations for 16 lanes: decayed p, new m, new v
    /// (exp_avg.lerp_(grad, 1 − β1); exp_avg_sq.mul_(β2).addcmul_(grad, grad, 1 − β2)).
    @inline(__always)
    func moments(p: F16, g: F16, m: F16, v: F16) -> (pd: F16, m: F16, v: F16) {
        (decays ? p * decay : p, m + omb1 * (g - m), v * b2 + omb2 * g * g)
    }

    /// The new p from `moments`: p ← p·(1 − lr·wd) − step_size · m / (√v / √(1 − β2^t) + ε)
    @inline(__always)
    func newP(_ u: (pd: F16, m: F16, v: F16)) -> F16 {
        u.pd - stepSize * (u.m / (u.v.squareRoot() / bc2sqrt + eps))
    }

    /// Whether `moments` prove the lanes' update finite without the square root and divisions
    /// (see mLimit).
    @inline(__always)
    func certainlyFinite(_ u: (pd: F16, m: F16, v: F16)) -> Bool {
        let lim = F16(repeating: mLimit), big = F16(repeating: 1e37)
        return all((u.m .<= lim) .& (u.m .>= -lim) .& (u.pd .<= big) .& (u.pd .>= -big)
                   .& (u.v .>= 0) .& (u.v .<= Float.greatestFiniteMagnitude))
    }
}

/// One AdamW update of n parameters. `step` is the 1-based step count after this update.
func adamwUpdate(_ p: FPtr, _ g: CFPtr, _ m: FPtr, _ v: FPtr, _ n: Int,
                 lr: Double, weightDecay: Double, step: Int64, _ h: AdamWHyper) {
    let c = AdamWStepConstants(lr: lr, weightDecay: weightDecay, step: step, h)
    var i = 0
    // (full groups in their own loop: a per-group tail test costs ~10% on large models)
    while i + 16 <= n {
        let u = c.moments(p: load16(p + i), g: load16(g + i), m: load16(m + i), v: load16(v + i))
        store16(c.newP(u), p + i); store16(u.m, m + i); store16(u.v, v + i)
        i += 16
    }
    if i < n {
        let k = n - i
        let u = c.moments(p: loadPartial(p + i, k), g: loadPartial(g + i, k), m: loadPartial(m + i, k), v: loadPartial(v + i, k))
        storePartial(c.newP(u), p + i, k); storePartial(u.m, m + i, k); storePartial(u.v, v + i, k)
    }
}

/// True when `adamwUpdate` with the same arguments would leave every parameter and moment
/// finite. Reads only (the same lane operations as the update, so the answer is exact): the
/// model runs it before the update so that an overflowing learning rate or weight decay is an
/// error with nothing changed, not a model full of Inf. x − x is 0 for finite x and NaN otherwise.
func adamwUpdateStaysFinite(_ p: CFPtr, _ g: CFPtr, _ m: CFPtr, _ v: CFPtr, _ n: Int,
                            lr: Double, weightDecay: Double, step: Int64, _ h: AdamWHyper) -> Bool {
    adamwCheck(p, g, m, v, n, lr: lr, weightDecay: weightDecay, step: step, h).staysFinite
}

/// adamwUpdateStaysFinite and the gradient's Σ g² (16-lane float partial sums of 4096 elements,
/// added in float64) in one read of p, g, m and v. Lanes that a cheap bound proves finite skip
/// the square root and divisions; the others run the update's exact operations, so the answer
/// is exact either way.
func adamwCheck(_ p: CFPtr, _ g: CFPtr, _ m: CFPtr, _ v: CFPtr, _ n: Int,
                lr: Double, weightDecay: Double, step: Int64, _ h: AdamWHyper) -> (staysFinite: Bool, sumSquares: Double) {
    let c = AdamWStepConstants(lr: lr, weightDecay: weightDecay, step: step, h)
    let constantsFinite = c.decay.isFinite && c.stepSize.isFinite
    var acc = F16(repeating: 0)
    var total = 0.0, i = 0
    while i < n {
        let end = min(n, i + 4096)
        var sq = F16(repeating: 0)
        while i + 16 <= end {
            let gi = load16(g + i)
            sq += gi * gi
            let u = c.moments(p: load16(p + i), g: gi, m: load16(m + i), v: load16(v + i))
            if !c.certainlyFinite(u) { let pn = c.newP(u); acc += (pn - pn) + (u.m - u.m) + (u.v - u.v) }
            i += 16
        }
        if i < end {
            let k = end - i   // zero-filled lanes stay finite
            let gi = loadPartial(g + i, k)
            sq += gi * gi
            let u = c.moments(p: loadPartial(p + i, k), g: gi, m: loadPartial(m + i, k), v: loadPartial(v + i, k))
            if !c.certainlyFinite(u) { let pn = c.newP(u); acc += (pn - pn) + (u.m - u.m) + (u.v - u.v) }
            i = end
        }
        total += Double(sq.sum())
    }
    return (constantsFinite && !any(acc .!= 0), total)
}
