// Exact (erf) GELU, as nn.GELU() with approximate='none'; erf from VectorMath (|err| ≤ 5e-7).

/// out = 0.5·x·(1 + erf(x/√2))
func geluForward(_ out: FPtr, _ inp: CFPtr, _ n: Int, _ ex: Exec) {
    struct Body: ChunkBody {
        let out: FPtr, inp: CFPtr
        func callAsFunction(_: Int, _ r: Range<Int>) {
            var i = r.lowerBound
            while i < r.upperBound {
                let k = min(16, r.upperBound - i)
                let x = k == 16 ? load16(inp + i) : loadPartial(inp + i, k)
                let y = 0.5 * x * (1 + erf16(x * 0.707_106_781_186_547_52))
                if k == 16 { store16(y, out + i) } else { storePartial(y, out + i, k) }
                i += k
            }
        }
    }
    ex.forEach(n, grain: 32768, Body(out: out, inp: inp))
}

/// dinp = dout · (Φ(x) + x·φ(x)),  φ(x) = e^{−x²/2}/√(2π)
func geluBackward(_ dinp: FPtr, _ dout: CFPtr, _ inp: CFPtr, _ n: Int, _ ex: Exec) {
    geluRecomputeBackward(nil, dinp, dout, inp, n, ex)
}

/// Backward through GELU that can also recompute the forward output, for stacks that do not
/// keep it: out (when not nil) = gelu(inp), bit-identical to geluForward; dinp = dout · gelu'(inp).
/// One erf per element for both. dinp may alias dout.
func geluRecomputeBackward(_ out: FPtr?, _ dinp: FPtr, _ dout: CFPtr, _ inp: CFPtr, _ n: Int, _ ex: Exec) {
    struct Body: ChunkBody {
        let out: FPtr?, dinp: FPtr, dout: CFPtr, inp: CFPtr
        func callAsFunction(_: Int, _ r: Range<Int>) {
            var i = r.lowerBound
            while i < r.upperBound {
                let k = min(16, r.upperBound - i)
                let x = k == 16 ? load16(inp + i) : loadPartial(inp + i, k)
                let d = k == 16 ? load16(dout + i) : loadPartial(dout + i, k)
                let e = erf16(x * 0.707_106_781_186_547_52)
                let g = exp16(-0.5 * x * x)
                let dy = d * (0.5 * (1 + e) + x * g * 0.398_942_280_401_432_68)
                if let out {
                    let y = 0.5 * x * (1 + e)
                    if k == 16 { store16(y, out + i) } else { storePartial(y, out + i, k) }
                }
                if k == 16 { store16(dy, dinp + i) } else { storePartial(dy, dinp + i, k) }
                i += k
            }
        }
    }
    ex.forEach(n, grain: 32768, Body(out: out, dinp: dinp, dout: dout, inp: inp))
}
