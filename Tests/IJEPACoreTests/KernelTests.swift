import CIJEPAKernels
import XCTest
@testable import IJEPACore

/// Every kernel: forward against a naive float64 twin, backward against central finite
/// differences of L = Σ out ⊙ R (R random). float32 kernels, so FD tolerances are loose-ish
/// (relative L2 ≤ 2e-2 with eps 1e-2) while naive-twin tolerances are tight.
final class KernelTests: XCTestCase {
    let ex1 = Exec(threads: 1), ex2 = Exec(threads: 2)

    func testLinearForwardBackward() {
        var rng = RNG(seed: 1)
        let M = 5, I = 7, O = 4
        let x = randomArray(M * I, &rng), w = randomArray(O * I, &rng), b = randomArray(O, &rng)
        let R = randomArray(M * O, &rng)
        func fwd(_ x: [Float], _ w: [Float], _ b: [Float]) -> [Float] {
            let o = HostTensor(zeros: M * O), X = HostTensor(x), Wt = HostTensor(w), B = HostTensor(b)
            linearForward(o.p, X.p, Wt.p, B.p, M, I, O, ex2)
            return o.array
        }
        var naive = [Float](repeating: 0, count: M * O)
        for r in 0..<M { for o in 0..<O {
            var s = Double(b[o]); for i in 0..<I { s += Double(x[r * I + i]) * Double(w[o * I + i]) }
            naive[r * O + o] = Float(s)
        } }
        assertClose(fwd(x, w, b), naive, atol: 1e-5, rtol: 1e-5, "linear forward")
        let dX = HostTensor(zeros: M * I), dW = HostTensor(zeros: O * I), dB = HostTensor(zeros: O)
        let Rt = HostTensor(R), X = HostTensor(x), Wt = HostTensor(w)
        linearBackward(dX.p, dW.p, dB.p, Rt.p, X.p, Wt.p, M, I, O, ex2)
        var xv = x, wv = w, bv = b
        XCTAssertLessThan(relativeL2(dX.array, finiteDifference(&xv) { dot(fwd($0, w, b), R) }), 1e-2)
        XCTAssertLessThan(relativeL2(dW.array, finiteDifference(&wv) { dot(fwd(x, $0, b), R) }), 1e-2)
        XCTAssertLessThan(relativeL2(dB.array, finiteDifference(&bv) { dot(fwd(x, w, $0), R) }), 1e-2)
        // accumulation: a second backward doubles parameter grads and (with accumulate) input grads
        linearBackward(dX.p, dW.p, dB.p, Rt.p, X.p, Wt.p, M, I, O, accumulate: true, ex2)
        let dX1 = HostTensor(zeros: M * I), dW1 = HostTensor(zeros: O * I)
        linearBackward(dX1.p, dW1.p, nil, Rt.p, X.p, Wt.p, M, I, O, ex1)
        assertClose(dX.array, dX1.array.map { 2 * $0 }, atol: 1e-5, rtol: 1e-5, "linear dX accumulate")
        assertClose(dW.array, dW1.array.map { 2 * $0 }, atol: 1e-5, rtol: 1e-5, "linear dW accumulate")
    }

    /// The packed-weight products of every kernel family this CPU runs (portable C, AVX2,
    /// AVX-512) against a float64 reference, overwriting and accumulating, and the same floats
    /// on every family. Shapes cover every tile height (1-12 rows), rows past one row block
    /// (264), a depth cut into two term blocks (> 2048), an odd number of panels, and a column
    /// range of one part (the other columns untouched).
    func testPackedProductsOnEveryKernelFamily() {
        XCTAssertEqual(IJK_PANEL, 16, "linearForward's column parts are cut on multiples of 16 columns")
        let top = ijk_isa()
        defer { ijk_limit_isa(IJK_ISA_AVX512) }
        let scratch = HostTensor(zeros: PackScratch.floatsPerPart)
        for (M, K, N) in [(1, 1, 16), (11, 7, 48), (25, 64, 96), (300, 40, 32), (30, 4100, 32), (197, 96, 80), (20, 13, 32)] {
            var rng = RNG(seed: UInt64(M * 31 + K * 7 + N))
            let x = randomArray(M * K, &rng), w = randomArray(N * K, &rng), c0 = randomArray(M * N, &rng)
            let X = HostTensor(x), Wt = HostTensor(w), P = HostTensor(zeros: N * K)
            ijk_pack_weights(Wt.p, N, K, P.p)
            // in place, in two panel ranges (as threads pack): the same floats
            let inPlace = HostTensor(w), rowsCopy = HostTensor(zeros: Int(IJK_PANEL) * K), half = N / 32
            ijk_pack_weights_in_place(inPlace.p, K, half, N / 16, rowsCopy.p)
            ijk_pack_weights_in_place(inPlace.p, K, 0, half, rowsCopy.p)
            XCTAssertEqual(inPlace.array, P.array, "packed in place, N \(N) K \(K)")
            var ref = [Double](repeating: 0, count: M * N)
            for r in 0..<M { for o in 0..<N {
                var s = 0.0; for i in 0..<K { s += Double(x[r * K + i]) * Double(w[o * K + i]) }
                ref[r * N + o] = s
            } }
            let tol = 1e-6 * Float(K).squareRoot() * 4
            var first: [[Float]] = []
            for family in 0...top {
                XCTAssertEqual(ijk_limit_isa(family), family)
                var results: [[Float]] = []
                for accumulate in [false, true] {
                    let C = HostTensor(c0), tag = "M \(M) K \(K) N \(N) family \(family) accumulate \(accumulate)"
                    ijk_sgemm_packed(M, K, X.p, K, P.p, 0, N, C.p, N, accumulate ? 1 : 0, scratch.p)
                    let want = accumulate ? zip(ref, c0).map { Float($0 + Double($1)) } : ref.map { Float($0) }
                    assertClose(C.array, want, atol: tol, rtol: 1e-5, tag)
                    results.append(C.array)
                }
                // columns 16 ..< N of a part: the first panel keeps its floats
                let part = HostTensor(c0)
                ijk_sgemm_packed(M, K, X.p, K, P.p, 16, N, part.p, N, 0, scratch.p)
                for r in 0..<M {
                    XCTAssertEqual(Array(part.array[(r * N)..<(r * N + 16)]), Array(c0[(r * N)..<(r * N + 16)]), "row \(r)")
                    XCTAssertEqual(Array(part.array[(r * N + 16)..<(r * N + N)]),
                                   Array(results[0][(r * N + 16)..<(r * N + N)]), "part, family \(family)")
                }
                if family == 0 { first = results } else {
                    XCTAssertEqual(results, first, "family \(family) gives the portable family's floats (M \(M) K \(K) N \(N))")
                }
            }
        }
    }

    /// linearForward's splits (output columns when the rows are few, rows otherwise) against a
    /// float64 reference, 1-3 threads, with bias, accumulation and a residual. O = 200 leaves a
    /// ragged last column block.
    func testLinearForwardSplits() {
        for (M, I, O) in [(40, 160, 200), (600, 96, 64)] {
            var rng = RNG(seed: UInt64(M * 7 + I + O))
            let x = randomArray(M * I, &rng), w = randomArray(O * I, &rng), b = randomArray(O, &rng)
            let o0 = randomArray(M * O, &rng), res = randomArray(M * O, &rng)
            var ref = [Double](repeating: 0, count: M * O)
            for r in 0..<M { for o in 0..<O {
                var s = Double(b[o]); for i in 0..<I { s += Double(x[r * I + i]) * Double(w[o * I + i]) }
                ref[r * O + o] = s
            } }
            for threads in 1...3 {
                let ex = Exec(threads: threads), tag = "M \(M) I \(I) O \(O) threads \(threads)"
                let X = HostTensor(x), Wt = HostTensor(w), B = HostTensor(b), R = HostTensor(res)
                let plain = HostTensor(o0), acc = HostTensor(o0), withRes = HostTensor(o0)
                linearForward(plain.p, X.p, Wt.p, B.p, M, I, O, ex)
                linearForward(acc.p, X.p, Wt.p, B.p, M, I, O, accumulate: true, ex)
                linearForward(withRes.p, X.p, Wt.p, B.p, M, I, O, residual: R.p, ex)
                assertClose(plain.array, ref.map { Float($0) }, atol: 1e-4, rtol: 1e-5, "plain " + tag)
                assertClose(acc.array, zip(ref, o0).map { Float($0 + Double($1)) }, atol: 1e-4, rtol: 1e-5, "accumulate " + tag)
                assertClose(withRes.array, zip(ref, res).map { Float($0 + Double($1)) }, atol: 1e-4, rtol: 1e-5, "residual " + tag)
            }
        }
        XCTAssertEqual(columnParts(rows: 40, cols: 200, depth: 160, ex2), 2, "the few-rows shape splits columns")
        XCTAssertEqual(columnParts(rows: 600, cols: 64, depth: 96, ex2), 0, "the many-rows shape splits rows")
    }

    /// linearBackward's work splits (rows; columns of dX or dW when the rows are few; per-thread
    /// partial sums of dW when they are many) against a float64 reference, 1-3 threads, with
    /// and without accumulation. Column splits cut at multiples of 16 (I = 200 leaves a ragged
    /// last block).
    func testLinearBackwardSplits() {
        // (M, I, O): few rows with O < I (dX and dW by columns), few rows with O > I (dW by
        // rows), many rows (dW partial sums), middle (dX by rows; dW by rows, or by input
        // columns when O < I)
        for (M, I, O) in [(40, 200, 160), (24, 96, 480), (1100, 64, 48), (600, 128, 160), (700, 192, 96)] {
            var rng = RNG(seed: UInt64(M + I + O))
            let x = randomArray(M * I, &rng), w = randomArray(O * I, &rng), dout = randomArray(M * O, &rng)
            let dx0 = randomArray(M * I, &rng), dw0 = randomArray(O * I, &rng), db0 = randomArray(O, &rng)
            var rdx = [Float](repeating: 0, count: M * I), rdw = [Float](repeating: 0, count: O * I)
            var rdb = [Float](repeating: 0, count: O)
            for r in 0..<M { for i in 0..<I {
                var s = 0.0; for o in 0..<O { s += Double(dout[r * O + o]) * Double(w[o * I + i]) }
                rdx[r * I + i] = Float(s)
            } }
            for o in 0..<O {
                for i in 0..<I {
                    var s = 0.0; for r in 0..<M { s += Double(dout[r * O + o]) * Double(x[r * I + i]) }
                    rdw[o * I + i] = Float(s)
                }
                var s = 0.0; for r in 0..<M { s += Double(dout[r * O + o]) }
                rdb[o] = Float(s)
            }
            for threads in 1...3 {
                let ex = Exec(threads: threads)
                for accumulate in [false, true] {
                    let dX = HostTensor(dx0), dW = HostTensor(dw0), dB = HostTensor(db0)
                    let X = HostTensor(x), Wt = HostTensor(w), D = HostTensor(dout)
                    linearBackward(dX.p, dW.p, dB.p, D.p, X.p, Wt.p, M, I, O, accumulate: accumulate, ex)
                    let tag = "M \(M) I \(I) O \(O) threads \(threads) accumulate \(accumulate)"
                    assertClose(dX.array, accumulate ? zip(dx0, rdx).map { $0 + $1 } : rdx, atol: 1e-4, rtol: 1e-4, "dX " + tag)
                    assertClose(dW.array, zip(dw0, rdw).map { $0 + $1 }, atol: 1e-3, rtol: 1e-4, "dW " + tag)
                    assertClose(dB.array, zip(db0, rdb).map { $0 + $1 }, atol: 1e-3, rtol: 1e-4, "db " + tag)
                }
            }
        }
        // the splits these shapes are meant to take
        let ex2 = Exec(threads: 2)
        XCTAssertEqual(columnParts(rows: 40, cols: 200, depth: 160, ex2), 2)
        XCTAssertEqual(columnParts(rows: 40, cols: 200, depth: 160, Exec(threads: 3)), 3)
        XCTAssertEqual(columnParts(rows: 600, cols: 128, depth: 160, ex2), 0)
        XCTAssertEqual(columnParts(rows: 40, cols: 200, depth: 160, Exec(threads: 1)), 0)
        XCTAssertEqual(columnParts(rows: 700, cols: 192, depth: 96, ex2), 0)
        XCTAssertEqual(columnParts(rows: 700, cols: 192, depth: 96, ex2, anyRows: true), 2)
        XCTAssertEqual(columnParts(rows: 700, cols: 192, depth: 96, Exec(threads: 3), anyRows: true), 3)
    }

    func testLayerNormForwardBackward() throws {
        // C = 10: only the 16-lane kernels' tails; C = 37: two full groups and a tail
        for C in [10, 37] {
            var rng = RNG(seed: 2)
            let M = 6
            let x = randomArray(M * C, &rng, scale: 2).enumerated().map { $0.element + Float($0.offset % 3) }
            let w = randomArray(C, &rng), b = randomArray(C, &rng), R = randomArray(M * C, &rng)
            for affine in [true, false] {
                let eps: Float = affine ? 1e-6 : 1e-5
                func fwd(_ x: [Float], _ w: [Float], _ b: [Float], ex: Exec) -> [Float] {
                    let o = HostTensor(zeros: M * C), X = HostTensor(x), Wt = HostTensor(w), B = HostTensor(b)
                    layerNormForward(o.p, nil, nil, X.p, affine ? Wt.p : nil, affine ? B.p : nil, M, C, eps, ex)
                    return o.array
                }
                var naive = [Float](repeating: 0, count: M * C)
                for r in 0..<M {
                    let row = (0..<C).map { Double(x[r * C + $0]) }
                    let mu = row.reduce(0, +) / Double(C)
                    let v = row.map { ($0 - mu) * ($0 - mu) }.reduce(0, +) / Double(C)
                    for i in 0..<C {
                        let xh = (row[i] - mu) / (v + Double(eps)).squareRoot()
                        naive[r * C + i] = Float(affine ? xh * Double(w[i]) + Double(b[i]) : xh)
                    }
                }
                assertClose(fwd(x, w, b, ex: ex1), naive, atol: 1e-5, rtol: 1e-5, "layernorm forward affine=\(affine)")
                assertClose(fwd(x, w, b, ex: ex2), naive, atol: 1e-5, rtol: 1e-5, "layernorm forward 2 threads")
                let mean = HostTensor(zeros: M), rstd = HostTensor(zeros: M), o = HostTensor(zeros: M * C)
                let X = HostTensor(x), Wt = HostTensor(w), B = HostTensor(b), Rt = HostTensor(R)
                layerNormForward(o.p, mean.p, rstd.p, X.p, affine ? Wt.p : nil, affine ? B.p : nil, M, C, eps, ex1)
                let dX = HostTensor(zeros: M * C), dW = HostTensor(zeros: C), dB = HostTensor(zeros: C)
                try layerNormBackward(dX.p, affine ? dW.p : nil, affine ? dB.p : nil, Rt.p, X.p, mean.p, rstd.p,
                                  affine ? Wt.p : nil, M, C, accumulate: false, ex2)
                var xv = x, wv = w, bv = b
                XCTAssertLessThan(relativeL2(dX.array, finiteDifference(&xv, eps: 1e-3) { dot(fwd($0, w, b, ex: ex1), R) }), 2e-2)
                if affine {
                    XCTAssertLessThan(relativeL2(dW.array, finiteDifference(&wv) { dot(fwd(x, $0, b, ex: ex1), R) }), 1e-2)
                    XCTAssertLessThan(relativeL2(dB.array, finiteDifference(&bv) { dot(fwd(x, w, $0, ex: ex1), R) }), 1e-2)
                }
            }
        }
    }

    func testGELUExactForwardBackward() {
        var rng = RNG(seed: 3)
        let n = 200
        let x = randomArray(n, &rng, scale: 3), R = randomArray(n, &rng)
        func fwd(_ x: [Float]) -> [Float] {
            let o = HostTensor(zeros: n), X = HostTensor(x)
            geluForward(o.p, X.p, n, ex2)
            return o.array
        }
        let naive = x.map { Float(0.5 * Double($0) * (1 + erf(Double($0) / 2.0.squareRoot()))) }
        assertClose(fwd(x), naive, atol: 1e-6, rtol: 1e-5, "gelu forward (exact erf)")
        // not the tanh approximation: the two differ by ~1e-4 at x = 2
        let tanhApprox = Float(0.5 * 2 * (1 + tanh(0.7978845608 * (2 + 0.044715 * 8))))
        XCTAssertGreaterThan(abs(fwd([2])[0] - tanhApprox), 5e-5)
        let dX = HostTensor(zeros: n), X = HostTensor(x), Rt = HostTensor(R)
        geluBackward(dX.p, Rt.p, X.p, n, ex2)
        var xv = x
        XCTAssertLessThan(relativeL2(dX.array, finiteDifference(&xv, eps: 1e-3) { dot(fwd($0), R) }), 1e-2)
    }

    /// Naive attention in float64: per sequence and head, softmax(q·kᵀ/√hd)·v.
    func naiveAttention(_ qkv: [Float], S: Int, T: Int, W: Int, H: Int) -> [Float] {
        let hd = W / H
        var out = [Float](repeating: 0, count: S * T * W)
        for s in 0..<S { for h in 0..<H { for i in 0..<T {
            var sc = [Double](repeating: 0, count: T)
            for j in 0..<T {
                var d = 0.0
                for e in 0..<hd { d += Double(qkv[(s * T + i) * 3 * W + h * hd + e]) * Double(qkv[(s * T + j) * 3 * W + W + h * hd + e]) }
                sc[j] = d / Double(hd).squareRoot()
            }
            let mx = sc.max()!
            let ex = sc.map { exp($0 - mx) }
            let z = ex.reduce(0, +)
            for e in 0..<hd {
                var acc = 0.0
                for j in 0..<T { acc += ex[j] / z * Double(qkv[(s * T + j) * 3 * W + 2 * W + h * hd + e]) }
                out[(s * T + i) * W + h * hd + e] = Float(acc)
            }
        } } }
        return out
    }

    func testAttentionForwardBackward() {
        var rng = RNG(seed: 4)
        let S = 3, T = 5, W = 8, H = 2
        let qkv = randomArray(S * T * 3 * W, &rng), R = randomArray(S * T * W, &rng)
        func fwd(_ q: [Float], ex: Exec) -> [Float] {
            let o = HostTensor(zeros: S * T * W), P = HostTensor(zeros: S * H * T * T), Q = HostTensor(q)
            attentionForward(o.p, P.p, Q.p, S, T, W, H, ex)
            return o.array
        }
        let naive = naiveAttention(qkv, S: S, T: T, W: W, H: H)
        assertClose(fwd(qkv, ex: ex1), naive, atol: 1e-5, rtol: 1e-5, "attention forward")
        assertClose(fwd(qkv, ex: ex2), naive, atol: 1e-5, rtol: 1e-5, "attention forward, 2 threads")
        let o = HostTensor(zeros: S * T * W), P = HostTensor(zeros: S * H * T * T), Q = HostTensor(qkv)
        attentionForward(o.p, P.p, Q.p, S, T, W, H, ex2)
        let dQ = HostTensor(zeros: S * T * 3 * W), scratch = HostTensor(zeros: 4 * T * T), Rt = HostTensor(R)
        attentionBackward(dQ.p, scratch.p, Rt.p, Q.p, P.p, S, T, W, H, ex2)
        var qv = qkv
        XCTAssertLessThan(relativeL2(dQ.array, finiteDifference(&qv, eps: 1e-2) { dot(fwd($0, ex: ex1), R) }), 1e-2)
    }

    func testSoftmaxRowsStableForLargeInputs() {
        let x = HostTensor([1000, 1001, 1002, -1000, 0, 1000])
        softmaxRows(x.p, 2, 3)
        let a = x.array
        XCTAssertEqual(a[0] + a[1] + a[2], 1, accuracy: 1e-6)
        XCTAssertEqual(a[5], 1, accuracy: 1e-6)
        XCTAssert(a.allSatisfy { $0.isFinite })
    }

    func testPatchGatherMatchesConvUnfold() {
        var rng = RNG(seed: 5)
        let B = 2, C = 3, S = 8, p = 4, G = S / p
        let img = randomArray(B * C * S * S, &rng)
        let N = G * G, P = C * p * p
        let cols = HostTensor(zeros: B * N * P), I = HostTensor(img)
        gatherPatches(cols.p, I.p, rows: B * N, imageIndex: { $0 / N }, patchIndex: { $0 % N },
                      C: C, height: S, width: S, patch: p)
        // conv weight [D, C, p, p] applied to patch n must equal the dot product with its row
        let D = 3
        let w = randomArray(D * P, &rng)
        for b in 0..<B { for n in 0..<N { for d in 0..<D {
            var conv = 0.0
            for c in 0..<C { for ky in 0..<p { for kx in 0..<p {
                let y = (n / G) * p + ky, x = (n % G) * p + kx
                conv += Double(w[d * P + c * p * p + ky * p + kx]) * Double(img[((b * C + c) * S + y) * S + x])
            } } }
            let row = (b * N + n) * P
            var mm = 0.0
            for k in 0..<P { mm += Double(w[d * P + k]) * Double(cols.array[row + k]) }
            XCTAssertEqual(conv, mm, accuracy: 1e-9)
        } } }
    }

    func testSmoothL1ValueAndGradient() {
        var rng = RNG(seed: 6)
        let n = 50
        let a = randomArray(n, &rng, scale: 1.5), b = randomArray(n, &rng)
        let naive = zip(a, b).map { x, y -> Double in
            let d = Double(x - y); return abs(d) < 1 ? 0.5 * d * d : abs(d) - 0.5
        }.reduce(0, +) / Double(n)
        let A = HostTensor(a), Bt = HostTensor(b), dA = HostTensor(zeros: n)
        XCTAssertEqual(smoothL1(A.p, Bt.p, n, dA.p), naive, accuracy: 1e-6)
        var av = a
        let fd = finiteDifference(&av, eps: 1e-3) { x in
            let X = HostTensor(x); return smoothL1(X.p, Bt.p, n, nil)
        }
        XCTAssertLessThan(relativeL2(dA.array, fd), 1e-2)
    }

    func testAdamWMatchesReferenceFormula() {
        // Two steps of AdamW on 3 numbers against the torch formula evaluated in float64.
        var p: [Float] = [0.5, -0.25, 1.0], m = [Float](repeating: 0, count: 3), v = m
        let grads: [[Float]] = [[0.1, -0.2, 1e-3], [0.05, 0.3, -2e-3]]
        var pd = p.map(Double.init), md = [0.0, 0, 0], vd = [0.0, 0, 0]
        let lr = 1e-2, wd = 0.1
        for (k, g) in grads.enumerated() {
            let P = HostTensor(p), G = HostTensor(g), Mm = HostTensor(m), V = HostTensor(v)
            adamwUpdate(P.p, G.p, Mm.p, V.p, 3, lr: lr, weightDecay: wd, step: Int64(k + 1), AdamWHyper())
            p = P.array; m = Mm.array; v = V.array
            for i in 0..<3 {
                pd[i] *= 1 - lr * wd
                md[i] = 0.9 * md[i] + 0.1 * Double(g[i])
                vd[i] = 0.999 * vd[i] + 0.001 * Double(g[i]) * Double(g[i])
                let mh = md[i] / (1 - pow(0.9, Double(k + 1))), vh = vd[i] / (1 - pow(0.999, Double(k + 1)))
                pd[i] -= lr * mh / (vh.squareRoot() + 1e-8)
            }
        }
        assertClose(p, pd.map(Float.init), atol: 1e-6, rtol: 1e-6, "adamw")
    }

    func testAdamWLanesBitIdenticalToScalarLoop() {
        // 37 = two full 16-lane groups and a tail of 5; the scalar loop is the torch single-tensor
        // formula in float32, one element at a time.
        var rng = RNG(seed: 11)
        let n = 37
        let p0 = randomArray(n, &rng), g = randomArray(n, &rng, scale: 0.3)
        let m0 = randomArray(n, &rng, scale: 0.1), v0 = randomArray(n, &rng, scale: 0.01).map { $0 * $0 }
        for (wd, step) in [(0.05, Int64(1)), (0.0, Int64(7))] {
            let lr = 3e-3, h = AdamWHyper()
            var ps = p0, ms = m0, vs = v0
            let decay = Float(1.0 - lr * wd), bc1 = 1.0 - pow(h.beta1, Double(step))
            let bc2sqrt = Float((1.0 - pow(h.beta2, Double(step))).squareRoot()), stepSize = Float(lr / bc1)
            for i in 0..<n {
                let pi = wd != 0 ? ps[i] * decay : ps[i]
                let mi = ms[i] + Float(1.0 - h.beta1) * (g[i] - ms[i])
                let vi = vs[i] * Float(h.beta2) + Float(1.0 - h.beta2) * g[i] * g[i]
                ms[i] = mi; vs[i] = vi
                ps[i] = pi - stepSize * (mi / (vi.squareRoot() / bc2sqrt + Float(h.eps)))
            }
            let P = HostTensor(p0), G = HostTensor(g), M = HostTensor(m0), V = HostTensor(v0)
            XCTAssertTrue(adamwUpdateStaysFinite(P.p, G.p, M.p, V.p, n, lr: lr, weightDecay: wd, step: step, h))
            adamwUpdate(P.p, G.p, M.p, V.p, n, lr: lr, weightDecay: wd, step: step, h)
            XCTAssertEqual(P.array.map(\.bitPattern), ps.map(\.bitPattern), "p, wd \(wd)")
            XCTAssertEqual(M.array.map(\.bitPattern), ms.map(\.bitPattern), "m, wd \(wd)")
            XCTAssertEqual(V.array.map(\.bitPattern), vs.map(\.bitPattern), "v, wd \(wd)")
        }
        // The dry run sees an overflow in a full group and in the tail.
        for bad in [3, 35] {
            var gb = g
            gb[bad] = 1e21   // (1 − β2)·g² overflows v
            let P = HostTensor(p0), G = HostTensor(gb), M = HostTensor(m0), V = HostTensor(v0)
            XCTAssertFalse(adamwUpdateStaysFinite(P.p, G.p, M.p, V.p, n, lr: 1e-3, weightDecay: 0.05, step: 1, AdamWHyper()),
                           "overflow at \(bad)")
        }
    }

    func testAdamWDryRunIsExactOnExtremeValues() {
        // The dry run skips the square root and divisions when a bound proves a lane finite; its
        // answer must still be exactly "the scalar update leaves everything finite". Values span
        // 1e-10 ... 1e38 in magnitude (v also negative), learning rates up to 1e30.
        var rng = RNG(seed: 23)
        func wild() -> Float {
            let e = rng.uniform() * 48 - 10
            return Float(pow(10, e)) * (rng.uniform() < 0.5 ? -1 : 1)
        }
        var outcomes = Set<Bool>()
        for trial in 0..<400 {
            let n = 1 + trial % 37
            var p = (0..<n).map { _ in Float(rng.normal()) }, g = p, m = p, v = p.map { $0 * $0 }
            // a few wild entries per trial
            for _ in 0..<(1 + trial % 3) {
                let i = Int(rng.uniform() * Double(n)) % n
                switch trial % 4 {
                case 0: g[i] = wild()
                case 1: m[i] = wild()
                case 2: p[i] = wild()
                default: v[i] = wild()
                }
            }
            let lr = [1e-3, 1.0, 1e10, 1e30][trial % 4 == 3 ? (trial / 4) % 4 : (trial / 3) % 4]
            let wd = trial % 2 == 0 ? 0.05 : 0.0
            let step = Int64(1 + trial % 5), h = AdamWHyper()
            let P = HostTensor(p), G = HostTensor(g), M = HostTensor(m), V = HostTensor(v)
            let predicted = adamwUpdateStaysFinite(P.p, G.p, M.p, V.p, n, lr: lr, weightDecay: wd, step: step, h)
            // the scalar update in float32, element by element
            let decay = Float(1.0 - lr * wd), bc1 = 1.0 - pow(h.beta1, Double(step))
            let bc2sqrt = Float((1.0 - pow(h.beta2, Double(step))).squareRoot()), stepSize = Float(lr / bc1)
            var finite = decay.isFinite && stepSize.isFinite
            for i in 0..<n {
                let pi = wd != 0 ? p[i] * decay : p[i]
                let mi = m[i] + Float(1.0 - h.beta1) * (g[i] - m[i])
                let vi = v[i] * Float(h.beta2) + Float(1.0 - h.beta2) * g[i] * g[i]
                let pn = pi - stepSize * (mi / (vi.squareRoot() / bc2sqrt + Float(h.eps)))
                finite = finite && pn.isFinite && mi.isFinite && vi.isFinite
            }
            XCTAssertEqual(predicted, finite, "trial \(trial): lr \(lr), p \(p), g \(g), m \(m), v \(v)")
            outcomes.insert(finite)
        }
        XCTAssertEqual(outcomes, [true, false], "both outcomes occur")
    }

    func testSinCosPositionTableLayout() {
        let D = 8, G = 3
        let t = sinCosPosEmbed2D(dim: D, grid: G)
        // entry (row 2, col 1): first D/2 dims encode the column, last D/2 the row
        let base = (2 * G + 1) * D
        XCTAssertEqual(t[base + 0], Float(sin(1.0)), accuracy: 1e-7)          // sin(col·ω0)
        XCTAssertEqual(t[base + 2], Float(cos(1.0)), accuracy: 1e-7)          // cos(col·ω0)
        XCTAssertEqual(t[base + 1], Float(sin(1.0 / 100)), accuracy: 1e-7)    // ω1 = 10000^(-1/2)
        XCTAssertEqual(t[base + 4], Float(sin(2.0)), accuracy: 1e-7)          // sin(row·ω0)
        XCTAssertEqual(t[base + 7], Float(cos(2.0 / 100)), accuracy: 1e-7)
    }
}
