import Glibc

// Exact (erf) GELU, as nn.GELU() with approximate='none'.

/// out = 0.5·x·(1 + erf(x/√2))
func geluForward(_ out: FPtr, _ inp: CFPtr, _ n: Int, _ ex: Exec) {
    ex.forEach(n, grain: 16384) { r in
        for i in r {
            let x = inp[i]
            out[i] = 0.5 * x * (1 + erff(x * 0.70710678118654752))
        }
    }
}

/// dinp = dout · (Φ(x) + x·φ(x))
func geluBackward(_ dinp: FPtr, _ dout: CFPtr, _ inp: CFPtr, _ n: Int, _ ex: Exec) {
    ex.forEach(n, grain: 16384) { r in
        for i in r {
            let x = inp[i]
            let cdf = 0.5 * (1 + erff(x * 0.70710678118654752))
            let pdf = expf(-0.5 * x * x) * 0.39894228040143268
            dinp[i] = dout[i] * (cdf + x * pdf)
        }
    }
}
