// LayerNorm over the last dimension C of [M, C] rows. weight/bias nil = no affine (F.layer_norm).

/// out = (x − mean)·rstd·w + b ; mean[M], rstd[M] saved for backward (two-pass variance).
func layerNormForward(_ out: FPtr, _ mean: FPtr?, _ rstd: FPtr?, _ inp: CFPtr,
                      _ weight: CFPtr?, _ bias: CFPtr?, _ M: Int, _ C: Int, _ eps: Float, _ ex: Exec) {
    struct Body: ChunkBody {
        let out: FPtr, mean: FPtr?, rstd: FPtr?, inp: CFPtr, weight: CFPtr?, bias: CFPtr?, C: Int, eps: Float
        func callAsFunction(_: Int, _ rows: Range<Int>) {
            for r in rows {
                let x = inp + r * C, y = out + r * C
                let mu = rowSum(x, C) / Float(C)
                let m16 = F16(repeating: mu)
                var acc = F16(repeating: 0)
                var i = 0
                while i + 16 <= C { let d = load16(x + i) - m16; acc += d * d; i += 16 }
                var tail = Float(0)
                while i < C { let d = x[i] - mu; tail += d * d; i += 1 }
                let rs = 1 / ((acc.sum() + tail) / Float(C) + eps).squareRoot()
                let r16 = F16(repeating: rs)
                i = 0
                if let weight, let bias {
                    while i + 16 <= C { store16((load16(x + i) - m16) * r16 * load16(weight + i) + load16(bias + i), y + i); i += 16 }
                    while i < C { y[i] = (x[i] - mu) * rs * weight[i] + bias[i]; i += 1 }
                } else {
                    while i + 16 <= C { store16((load16(x + i) - m16) * r16, y + i); i += 16 }
                    while i < C { y[i] = (x[i] - mu) * rs; i += 1 }
                }
                mean?[r] = mu
                rstd?[r] = rs
            }
        }
    }
    ex.forEach(M, grain: max(1, 16384 / max(C, 1)),
               Body(out: out, mean: mean, rstd: rstd, inp: inp, weight: weight, bias: bias, C: C, eps: eps))
}

/// dinp (+)= LN backward; dweight += Σ dout·x̂ ; dbias += Σ dout.
/// Parameter gradients are reduced per thread (chunk) into scratch rows, then summed in order,
/// so results do not depend on timing.
func layerNormBackward(_ dinp: FPtr, _ dweight: FPtr?, _ dbias: FPtr?, _ dout: CFPtr, _ inp: CFPtr,
                       _ mean: CFPtr, _ rstd: CFPtr, _ weight: CFPtr?, _ M: Int, _ C: Int,
                       accumulate: Bool, _ ex: Exec) throws(IJEPAError) {
    let chunks = ex.chunkCount(M, grain: max(1, 16384 / max(C, 1)))
    let partial = try ex.scratch.ensure(2 * C * chunks)
    partial.update(repeating: 0, count: 2 * C * chunks)
    struct Body: ChunkBody {
        let dinp: FPtr, dout: CFPtr, inp: CFPtr, mean: CFPtr, rstd: CFPtr, weight: CFPtr?, C: Int
        let accumulate: Bool, partial: FPtr
        /// (x̂, dy, dy·w) of lanes i..<i+k of row r (k ≤ 16; zero-filled tails add 0)
        @inline(__always)
        func lanes(_ r: Int, _ i: Int, _ k: Int, _ mu: F16, _ rs: F16) -> (xh: F16, d: F16, g: F16) {
            let xh = (loadLanes(inp + r * C + i, k) - mu) * rs
            let d = loadLanes(dout + r * C + i, k)
            return (xh, d, weight.map { d * loadLanes($0 + i, k) } ?? d)
        }
        func callAsFunction(_ chunk: Int, _ rows: Range<Int>) {
            let pw = partial + 2 * C * chunk, pb = pw + C
            for r in rows {
                let dx = dinp + r * C
                let mu = F16(repeating: mean[r]), rs = F16(repeating: rstd[r])
                var sumG = F16(repeating: 0), sumGX = F16(repeating: 0)
                var i = 0
                while i < C {   // row sums, and the weight/bias partial sums of this chunk
                    let k = min(16, C - i)
                    let (xh, d, g) = lanes(r, i, k, mu, rs)
                    sumG += g
                    sumGX += g * xh
                    storeLanes(loadLanes(pw + i, k) + d * xh, pw + i, k)
                    storeLanes(loadLanes(pb + i, k) + d, pb + i, k)
                    i += k
                }
                let mG = F16(repeating: sumG.sum() / Float(C)), mGX = F16(repeating: sumGX.sum() / Float(C))
                i = 0
                while i < C {
                    let k = min(16, C - i)
                    let (xh, _, g) = lanes(r, i, k, mu, rs)
                    var v = (g - mG - xh * mGX) * rs
                    if accumulate { v += loadLanes(dx + i, k) }
                    storeLanes(v, dx + i, k)
                    i += k
                }
            }
        }
    }
    ex.forEach(M, grain: max(1, 16384 / max(C, 1)), Body(dinp: dinp, dout: dout, inp: inp, mean: mean, rstd: rstd,
                                                          weight: weight, C: C, accumulate: accumulate, partial: partial))
    for c in 0..<chunks {
        let pw = partial + 2 * C * c, pb = pw + C
        if let dweight { for i in 0..<C { dweight[i] += pw[i] } }
        if let dbias { for i in 0..<C { dbias[i] += pb[i] } }
    }
}
