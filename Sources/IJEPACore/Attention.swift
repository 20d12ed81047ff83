import Glibc

// Multi-head self-attention core (no projections): softmax(Q·Kᵀ·scale)·V per sequence and head,
// each product one sgemm over strided views of the packed qkv rows, no transposition copies.
// qkv [S, T, 3W] with per-token layout [q | k | v], each head-major (H × hd); out [S, T, W];
// probs [S, H, T, T].

func attentionForward(_ out: FPtr, _ probs: FPtr, _ qkv: CFPtr,
                      _ S: Int, _ T: Int, _ W: Int, _ H: Int, _ ex: Exec) {
    let hd = W / H, W3 = 3 * W
    let scale = Float(1.0 / Double(hd).squareRoot())
    ex.forEach(S * H, grain: max(1, 4096 / max(1, T * T * hd / 64))) { pairs in
        for sh in pairs {
            let s = sh / H, h = sh % H
            let q = qkv + s * T * W3 + h * hd, k = q + W, v = q + 2 * W
            let p = probs + sh * T * T
            sgemm(false, true, T, T, hd, scale, q, W3, k, W3, 0, p, T)
            softmaxRows(p, T, T)
            sgemm(false, false, T, hd, T, 1, p, T, v, W3, 0, out + s * T * W + h * hd, W)
        }
    }
}

/// dqkv [S,T,3W] is overwritten. scratch needs 2 · ex.threads · T · T floats (one T×T per chunk).
func attentionBackward(_ dqkv: FPtr, _ scratch: FPtr, _ dout: CFPtr, _ qkv: CFPtr, _ probs: CFPtr,
                       _ S: Int, _ T: Int, _ W: Int, _ H: Int, _ ex: Exec) {
    let hd = W / H, W3 = 3 * W
    let scale = Float(1.0 / Double(hd).squareRoot())
    ex.forEachChunk(S * H, grain: max(1, 4096 / max(1, T * T * hd / 64))) { chunk, pairs in
        let dp = scratch + chunk * T * T
        for sh in pairs {
            let s = sh / H, h = sh % H
            let q = qkv + s * T * W3 + h * hd, k = q + W, v = q + 2 * W
            let dq = dqkv + s * T * W3 + h * hd, dk = dq + W, dv = dq + 2 * W
            let p = probs + sh * T * T
            let dO = dout + s * T * W + h * hd
            sgemm(false, true, T, T, hd, 1, dO, W, v, W3, 0, dp, T)      // dP = dO·Vᵀ
            sgemm(true, false, T, hd, T, 1, p, T, dO, W, 0, dv, W3)      // dV = Pᵀ·dO
            for i in 0..<T {                                              // dS = P ⊙ (dP − rowsum(P⊙dP))
                let pr = p + i * T, dr = dp + i * T
                let dot = rowDot(pr, dr, T)
                for j in 0..<T { dr[j] = pr[j] * (dr[j] - dot) }
            }
            sgemm(false, false, T, hd, T, scale, dp, T, k, W3, 0, dq, W3) // dQ = scale·dS·K
            sgemm(true, false, T, hd, T, scale, dp, T, q, W3, 0, dk, W3)  // dK = scale·dSᵀ·Q
        }
    }
}

/// Row-wise softmax in place over [rows, n].
func softmaxRows(_ x: FPtr, _ rows: Int, _ n: Int) {
    for r in 0..<rows {
        let row = x + r * n
        let mx = F16(repeating: rowMax(row, n))
        var sum = F16(repeating: 0)
        var j = 0
        while j + 16 <= n { let e = exp16(load16(row + j) - mx); store16(e, row + j); sum += e; j += 16 }
        if j < n {
            let e = exp16(loadPartial(row + j, n - j) - mx)
            storePartial(e, row + j, n - j)
            for k in 0..<(n - j) { sum[k] += e[k] }
        }
        let inv = F16(repeating: 1 / sum.sum())
        j = 0
        while j + 16 <= n { store16(load16(row + j) * inv, row + j); j += 16 }
        while j < n { row[j] *= inv[0]; j += 1 }
    }
}
