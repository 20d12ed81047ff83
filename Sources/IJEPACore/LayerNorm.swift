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
        func callAsFunction(_ chunk: Int, _ rows: Range<Int>) {
            let pw = partial + 2 * C * chunk, pb = pw + C
            let one = F16(repeating: 1)
            for r in rows {
                let x = inp + r * C, dy = dout + r * C, dx = dinp + r * C
                let mu = F16(repeating: mean[r]), rs = F16(repeating: rstd[r])
                // 16 lanes at a time (C need not be a multiple of 16: zero-filled tails add 0)
                var sumG = F16(repeating: 0), sumGX = F16(repeating: 0)
                var i = 0
                while i < C {
                    let k = min(16, C - i)
                    let xv = k == 16 ? load16(x + i) : loadPartial(x + i, k)
                    let d = k == 16 ? load16(dy + i) : loadPartial(dy + i, k)
                    let w = weight.map { k == 16 ? load16($0 + i) : loadPartial($0 + i, k) } ?? one
                    let xh = (xv - mu) * rs
                    let g = d * w
                    sumG += g
                    sumGX += g * xh
                    let nw = (k == 16 ? load16(pw + i) : loadPartial(pw + i, k)) + d * xh
                    let nb = (k == 16 ? load16(pb + i) : loadPartial(pb + i, k)) + d
                    if k == 16 { store16(nw, pw + i); store16(nb, pb + i) } else { storePartial(nw, pw + i, k); storePartial(nb, pb + i, k) }
                    i += k
                }
                let mG = F16(repeating: sumG.sum() / Float(C)), mGX = F16(repeating: sumGX.sum() / Float(C))
                i = 0
                while i < C {
                    let k = min(16, C - i)
                    let xv = k == 16 ? load16(x + i) : loadPartial(x + i, k)
                    let d = k == 16 ? load16(dy + i) : loadPartial(dy + i, k)
                    let w = weight.map { k == 16 ? load16($0 + i) : loadPartial($0 + i, k) } ?? one
                    let xh = (xv - mu) * rs
                    var v = (d * w - mG - xh * mGX) * rs
                    if accumulate { v += k == 16 ? load16(dx + i) : loadPartial(dx + i, k) }
                    if k == 16 { store16(v, dx + i) } else { storePartial(v, dx + i, k) }
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
