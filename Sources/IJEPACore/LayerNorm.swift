import Glibc

// LayerNorm over the last dimension C of [M, C] rows. weight/bias nil = no affine (F.layer_norm).

/// out = (x - mean) * rstd * w + b ; mean[M], rstd[M] saved for backward.
func layerNormForward(_ out: FPtr, _ mean: FPtr?, _ rstd: FPtr?, _ inp: CFPtr,
                      _ weight: CFPtr?, _ bias: CFPtr?, _ M: Int, _ C: Int, _ eps: Float, _ ex: Exec) {
    ex.forEach(M, grain: max(1, 8192 / max(C, 1))) { rows in
        for r in rows {
            let x = inp + r * C
            let y = out + r * C
            var s = 0.0
            for i in 0..<C { s += Double(x[i]) }
            let mu = Float(s / Double(C))
            var v = 0.0
            for i in 0..<C { let d = Double(x[i] - mu); v += d * d }
            let rs = Float(1.0 / (v / Double(C) + Double(eps)).squareRoot())
            if let weight, let bias {
                for i in 0..<C { y[i] = (x[i] - mu) * rs * weight[i] + bias[i] }
            } else {
                for i in 0..<C { y[i] = (x[i] - mu) * rs }
            }
            mean?[r] = mu
            rstd?[r] = rs
        }
    }
}

/// dinp (+)= LN backward; dweight += Σ dout·x̂ ; dbias += Σ dout.
func layerNormBackward(_ dinp: FPtr, _ dweight: FPtr?, _ dbias: FPtr?, _ dout: CFPtr, _ inp: CFPtr,
                       _ mean: CFPtr, _ rstd: CFPtr, _ weight: CFPtr?, _ M: Int, _ C: Int,
                       accumulate: Bool, _ ex: Exec) {
    ex.forEach(M, grain: max(1, 8192 / max(C, 1))) { rows in
        for r in rows {
            let x = inp + r * C, dy = dout + r * C, dx = dinp + r * C
            let mu = mean[r], rs = rstd[r]
            var sumG = Float(0), sumGX = Float(0)
            for i in 0..<C {
                let g = weight.map { dy[i] * $0[i] } ?? dy[i]
                sumG += g
                sumGX += g * (x[i] - mu) * rs
            }
            let mG = sumG / Float(C), mGX = sumGX / Float(C)
            for i in 0..<C {
                let g = weight.map { dy[i] * $0[i] } ?? dy[i]
                let xh = (x[i] - mu) * rs
                let v = (g - mG - xh * mGX) * rs
                if accumulate { dx[i] += v } else { dx[i] = v }
            }
        }
    }
    if dweight != nil || dbias != nil {
        for r in 0..<M {
            let x = inp + r * C, dy = dout + r * C
            let mu = mean[r], rs = rstd[r]
            if let dweight { for i in 0..<C { dweight[i] += dy[i] * (x[i] - mu) * rs } }
            if let dbias { for i in 0..<C { dbias[i] += dy[i] } }
        }
    }
}
