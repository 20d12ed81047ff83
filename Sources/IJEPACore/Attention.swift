import Glibc

// Multi-head self-attention core (no projections): softmax(Q·Kᵀ·scale)·V per sequence and head,
// each product one sgemm over strided views of the packed qkv rows, no transposition copies.
// Sequences may have different lengths (ragged contexts): sequence s is rows
// rowOff[s] − rowOff[0] ..< rowOff[s+1] − rowOff[0] and its probabilities start at
// probOff[s] − probOff[0] (H·T_s² floats, head-major). Per row: qkv [3W] with layout [q | k | v],
// each head-major (H × hd); out [W]; probs of a sequence [H, T_s, T_s].
// With tail k > 0 only the last k rows of each sequence are queries (a stack's last layer when
// only those rows are outputs, e.g. the predictor's mask tokens): every row is still a key and
// value, probabilities are [H, k, T_s] per sequence, and out (dout) has k compact rows per
// sequence, sequence s at rows s·k.

/// Offsets of S sequences of T tokens each (rowOff and probOff need S + 1 entries).
func uniformOffsets(_ rowOff: UnsafeMutablePointer<Int>, _ probOff: UnsafeMutablePointer<Int>, S: Int, T: Int, H: Int) {
    for s in 0...S { rowOff[s] = s * T; probOff[s] = s * H * T * T }
}

func attentionForward(_ out: FPtr, _ probs: FPtr, _ qkv: CFPtr, _ S: Int, rowOff: UnsafePointer<Int>,
                      probOff: UnsafePointer<Int>, maxT: Int, _ W: Int, _ H: Int, _ ex: Exec, tail: Int = 0) {
    let hd = W / H, W3 = 3 * W
    let scale = Float(1.0 / Double(hd).squareRoot())
    struct Body: ChunkBody {
        let out: FPtr, probs: FPtr, qkv: CFPtr, rowOff: UnsafePointer<Int>, probOff: UnsafePointer<Int>
        let W: Int, H: Int, hd: Int, W3: Int, scale: Float, r0: Int, p0: Int, tail: Int
        func callAsFunction(_: Int, _ pairs: Range<Int>) {
            for sh in pairs {
                let s = sh / H, h = sh % H
                let row = rowOff[s] - r0, T = rowOff[s + 1] - rowOff[s]
                let Tq = tail > 0 ? tail : T, orow = tail > 0 ? s * tail : row
                let k = qkv + row * W3 + h * hd + W, v = k + W
                let q = qkv + (row + T - Tq) * W3 + h * hd
                let p = probs + (probOff[s] - p0) + h * Tq * T
                sgemm(false, true, Tq, T, hd, scale, q, W3, k, W3, 0, p, T)
                softmaxRows(p, Tq, T)
                sgemm(false, false, Tq, hd, T, 1, p, T, v, W3, 0, out + orow * W + h * hd, W)
            }
        }
    }
    ex.forEach(S * H, grain: max(1, 4096 / max(1, maxT * maxT * hd / 64)),
               Body(out: out, probs: probs, qkv: qkv, rowOff: rowOff, probOff: probOff, W: W, H: H, hd: hd, W3: W3,
                    scale: scale, r0: rowOff[0], p0: probOff[0], tail: tail))
}

/// The attention output again from the kept probabilities (out = P·V per sequence and head,
/// the forward's second product, bit-identical), for stacks that do not keep it.
func attentionRecomputeOutput(_ out: FPtr, _ probs: CFPtr, _ qkv: CFPtr, _ S: Int, rowOff: UnsafePointer<Int>,
                              probOff: UnsafePointer<Int>, maxT: Int, _ W: Int, _ H: Int, _ ex: Exec, tail: Int = 0) {
    struct Body: ChunkBody {
        let out: FPtr, probs: CFPtr, qkv: CFPtr, rowOff: UnsafePointer<Int>, probOff: UnsafePointer<Int>
        let W: Int, H: Int, hd: Int, r0: Int, p0: Int, tail: Int
        func callAsFunction(_: Int, _ pairs: Range<Int>) {
            for sh in pairs {
                let s = sh / H, h = sh % H
                let row = rowOff[s] - r0, T = rowOff[s + 1] - rowOff[s]
                let Tq = tail > 0 ? tail : T, orow = tail > 0 ? s * tail : row
                let v = qkv + row * 3 * W + h * hd + 2 * W
                sgemm(false, false, Tq, hd, T, 1, probs + (probOff[s] - p0) + h * Tq * T, T, v, 3 * W, 0,
                      out + orow * W + h * hd, W)
            }
        }
    }
    let hd = W / H
    ex.forEach(S * H, grain: max(1, 8192 / max(1, maxT * maxT * hd / 64)),
               Body(out: out, probs: probs, qkv: qkv, rowOff: rowOff, probOff: probOff, W: W, H: H, hd: hd,
                    r0: rowOff[0], p0: probOff[0], tail: tail))
}

/// dqkv rows are overwritten (with tail k, dQ is 0 on the rows that are not queries).
/// scratch needs 2 · ex.threads · maxT² floats (one maxT² per chunk).
func attentionBackward(_ dqkv: FPtr, _ scratch: FPtr, _ dout: CFPtr, _ qkv: CFPtr, _ probs: CFPtr, _ S: Int,
                       rowOff: UnsafePointer<Int>, probOff: UnsafePointer<Int>, maxT: Int,
                       _ W: Int, _ H: Int, _ ex: Exec, tail: Int = 0) {
    let hd = W / H, W3 = 3 * W
    let scale = Float(1.0 / Double(hd).squareRoot())
    struct Body: ChunkBody {
        let dqkv: FPtr, scratch: FPtr, dout: CFPtr, qkv: CFPtr, probs: CFPtr
        let rowOff: UnsafePointer<Int>, probOff: UnsafePointer<Int>, maxT: Int
        let W: Int, H: Int, hd: Int, W3: Int, scale: Float, r0: Int, p0: Int, tail: Int
        func callAsFunction(_ chunk: Int, _ pairs: Range<Int>) {
            let dp = scratch + chunk * maxT * maxT
            for sh in pairs {
                let s = sh / H, h = sh % H
                let row = rowOff[s] - r0, T = rowOff[s + 1] - rowOff[s]
                let Tq = tail > 0 ? tail : T, orow = tail > 0 ? s * tail : row
                let k = qkv + row * W3 + h * hd + W, v = k + W
                let q = qkv + (row + T - Tq) * W3 + h * hd
                let dk = dqkv + row * W3 + h * hd + W, dv = dk + W
                let dq = dqkv + (row + T - Tq) * W3 + h * hd
                let p = probs + (probOff[s] - p0) + h * Tq * T
                let dO = dout + orow * W + h * hd
                sgemm(false, true, Tq, T, hd, 1, dO, W, v, W3, 0, dp, T)     // dP = dO·Vᵀ
                sgemm(true, false, T, hd, Tq, 1, p, T, dO, W, 0, dv, W3)     // dV = Pᵀ·dO
                for i in 0..<Tq {                                             // dS = P ⊙ (dP − rowsum(P⊙dP))
                    let pr = p + i * T, dr = dp + i * T
                    let dot = rowDot(pr, dr, T)
                    for j in 0..<T { dr[j] = pr[j] * (dr[j] - dot) }
                }
                sgemm(false, false, Tq, hd, T, scale, dp, T, k, W3, 0, dq, W3) // dQ = scale·dS·K
                sgemm(true, false, T, hd, Tq, scale, dp, T, q, W3, 0, dk, W3)  // dK = scale·dSᵀ·Q
                for i in 0..<(T - Tq) {                                        // rows that are not queries
                    (dqkv + (row + i) * W3 + h * hd).update(repeating: 0, count: hd)
                }
            }
        }
    }
    ex.forEach(S * H, grain: max(1, 4096 / max(1, maxT * maxT * hd / 64)),
               Body(dqkv: dqkv, scratch: scratch, dout: dout, qkv: qkv, probs: probs, rowOff: rowOff, probOff: probOff,
                    maxT: maxT, W: W, H: H, hd: hd, W3: W3, scale: scale, r0: rowOff[0], p0: probOff[0], tail: tail))
}

/// Uniform-length forms (S sequences of T tokens; probs [S, H, T, T]).
func attentionForward(_ out: FPtr, _ probs: FPtr, _ qkv: CFPtr, _ S: Int, _ T: Int, _ W: Int, _ H: Int, _ ex: Exec) {
    let off = UnsafeMutablePointer<Int>.allocate(capacity: 2 * (S + 1))
    defer { off.deallocate() }
    uniformOffsets(off, off + S + 1, S: S, T: T, H: H)
    attentionForward(out, probs, qkv, S, rowOff: off, probOff: off + S + 1, maxT: T, W, H, ex)
}

func attentionBackward(_ dqkv: FPtr, _ scratch: FPtr, _ dout: CFPtr, _ qkv: CFPtr, _ probs: CFPtr,
                       _ S: Int, _ T: Int, _ W: Int, _ H: Int, _ ex: Exec) {
    let off = UnsafeMutablePointer<Int>.allocate(capacity: 2 * (S + 1))
    defer { off.deallocate() }
    uniformOffsets(off, off + S + 1, S: S, T: T, H: H)
    attentionBackward(dqkv, scratch, dout, qkv, probs, S, rowOff: off, probOff: off + S + 1, maxT: T, W, H, ex)
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

/// Attention for selected queries of S sequences, serial (one task's sequences): sequence s has
/// rows rowOff[s] − rowOff[0] ..< rowOff[s+1] − rowOff[0] of qkv (every row a key and value)
/// and its queries are the compact rows selOff[s] − selOff[0] ..< selOff[s+1] − selOff[0] of
/// q [·, W] (gathered q parts of qkv rows); out gets the same compact rows. probs: scratch of
/// H·n_s·T_s floats for the largest sequence.
func attentionSelectedQueries(_ out: FPtr, _ probs: FPtr, _ q: CFPtr, _ qkv: CFPtr, _ S: Int,
                              rowOff: UnsafePointer<Int>, selOff: UnsafePointer<Int>, _ W: Int, _ H: Int) {
    let hd = W / H, W3 = 3 * W
    let scale = Float(1.0 / Double(hd).squareRoot())
    for s in 0..<S {
        let row = rowOff[s] - rowOff[0], T = rowOff[s + 1] - rowOff[s]
        let qrow = selOff[s] - selOff[0], n = selOff[s + 1] - selOff[s]
        if n == 0 { continue }
        for h in 0..<H {
            let k = qkv + row * W3 + h * hd + W, v = k + W
            let p = probs + h * n * T
            sgemm(false, true, n, T, hd, scale, q + qrow * W + h * hd, W, k, W3, 0, p, T)
            softmaxRows(p, n, T)
            sgemm(false, false, n, hd, T, 1, p, T, v, W3, 0, out + qrow * W + h * hd, W)
        }
    }
}
