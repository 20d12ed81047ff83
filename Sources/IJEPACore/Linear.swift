import COpenBLAS

// Matrix products, all row-major float32 through OpenBLAS.

/// C[m,n] = alpha * op(A) * op(B) + beta * C, row-major.
@inline(__always)
func sgemm(_ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int,
           _ alpha: Float, _ a: CFPtr, _ lda: Int, _ b: CFPtr, _ ldb: Int,
           _ beta: Float, _ c: FPtr, _ ldc: Int) {
    if m == 0 || n == 0 { return }
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// out[M,O] = inp[M,I] · W[O,I]ᵀ + b[O]
func linearForward(_ out: FPtr, _ inp: CFPtr, _ weight: CFPtr, _ bias: CFPtr?,
                   _ M: Int, _ I: Int, _ O: Int) {
    if let bias {
        for r in 0..<M { (out + r * O).update(from: bias, count: O) }
        sgemm(false, true, M, O, I, 1, inp, I, weight, I, 1, out, O)
    } else {
        sgemm(false, true, M, O, I, 1, inp, I, weight, I, 0, out, O)
    }
}

/// dinp[M,I] = dout[M,O] · W[O,I] (+ dinp if accumulate); dW[O,I] += doutᵀ · inp; db[O] += Σ_rows dout.
func linearBackward(_ dinp: FPtr?, _ dweight: FPtr, _ dbias: FPtr?, _ dout: CFPtr, _ inp: CFPtr,
                    _ weight: CFPtr, _ M: Int, _ I: Int, _ O: Int, accumulate: Bool = false) {
    if let dinp { sgemm(false, false, M, I, O, 1, dout, O, weight, I, accumulate ? 1 : 0, dinp, I) }
    sgemm(true, false, O, I, M, 1, dout, O, inp, I, 1, dweight, I)
    if let dbias { columnSumAccumulate(dbias, dout, M, O) }
}

/// acc[C] += Σ_r x[r, C]
func columnSumAccumulate(_ acc: FPtr, _ x: CFPtr, _ rows: Int, _ cols: Int) {
    for r in 0..<rows {
        let row = x + r * cols
        for c in 0..<cols { acc[c] += row[c] }
    }
}
