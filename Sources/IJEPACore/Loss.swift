// Smooth-L1 (β = 1, mean over all n elements), as F.smooth_l1_loss.

/// Returns the mean loss; writes dpred = ∂loss/∂pred when dpred is non-nil.
func smoothL1(_ pred: CFPtr, _ target: CFPtr, _ n: Int, _ dpred: FPtr?) -> Double {
    var total = 0.0
    let inv = Float(1.0 / Double(n))
    var i = 0
    while i < n {
        let end = min(n, i + 4096)
        var part = Float(0)
        for j in i..<end {
            let d = pred[j] - target[j]
            let a = abs(d)
            part += a < 1 ? 0.5 * d * d : a - 0.5
            if let dpred { dpred[j] = (d < -1 ? -1 : (d > 1 ? 1 : d)) * inv }
        }
        total += Double(part)
        i = end
    }
    return total / Double(n)
}
