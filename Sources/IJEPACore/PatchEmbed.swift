import Glibc

/// Fixed 2-D sin-cos position table [G*G, D] (float64 then float32, as get_2d_sincos_pos_embed):
/// entry row*G+col is concat(emb1d(col), emb1d(row)), emb1d(p) = [sin(p·ω_k), cos(p·ω_k)],
/// ω_k = 10000^(−k/(D/4)), k < D/4.
public func sinCosPosEmbed2D(dim D: Int, grid G: Int) -> [Float] {
    let quarter = D / 4
    var out = [Float](repeating: 0, count: G * G * D)
    var omega = [Double](repeating: 0, count: quarter)
    for k in 0..<quarter { omega[k] = 1.0 / pow(10000.0, Double(k) / Double(quarter)) }
    for row in 0..<G {
        for col in 0..<G {
            let base = (row * G + col) * D
            for (half, p) in [(0, Double(col)), (1, Double(row))] {
                let o = base + half * (D / 2)
                for k in 0..<quarter {
                    out[o + k] = Float(sin(p * omega[k]))
                    out[o + quarter + k] = Float(cos(p * omega[k]))
                }
            }
        }
    }
    return out
}

/// Unfolds the patches named by `patchIndex` into rows (the conv as a matmul):
/// cols[r, c·p·p + ky·p + kx] = images[imageIndex[r], c, py·p+ky, px·p+kx] with
/// (py, px) = divmod(patchIndex[r], width / p). images are NCHW float32 [·, C, height, width];
/// pixels past the last whole patch are never read (the conv with stride p drops them).
func gatherPatches(_ cols: FPtr, _ images: CFPtr, rows: Int, imageIndex: (Int) -> Int,
                   patchIndex: (Int) -> Int, C: Int, height: Int, width: Int, patch p: Int) {
    let gw = width / p
    let P = C * p * p
    let plane = height * width
    for r in 0..<rows {
        let b = imageIndex(r), n = patchIndex(r)
        let py = n / gw, px = n % gw
        var dst = cols + r * P
        let img = images + b * C * plane
        for c in 0..<C {
            for ky in 0..<p {
                let src = img + c * plane + (py * p + ky) * width + px * p
                dst.update(from: src, count: p)
                dst += p
            }
        }
    }
}
