import CIJEPAKernels
import COpenBLAS

// Matrix products, all row-major float32 through single-threaded calls that the model's own
// pool runs side by side on disjoint blocks: OpenBLAS, or for an inference encoder's block
// linears the packed-weight kernels of CIJEPAKernels (weights packed once at load).

/// C[m,n] = alpha * op(A) * op(B) + beta * C, row-major.
@inline(__always)
func sgemm(_ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int,
           _ alpha: Float, _ a: CFPtr, _ lda: Int, _ b: CFPtr, _ ldb: Int,
           _ beta: Float, _ c: FPtr, _ ldc: Int) {
    if m == 0 || n == 0 { return }
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// Rows per chunk so that a chunk is worth a fork (~≥ 1 MFLOP).
@inline(__always)
func rowGrain(_ flopsPerRow: Int) -> Int { max(1, 1_000_000 / max(1, flopsPerRow)) }

/// The scratch of products with packed weights (PackedWeights): `parts` regions of
/// ijk_scratch_floats() floats, one per thread that runs a part of a product.
struct PackScratch {
    let base: FPtr, parts: Int
    static var floatsPerPart: Int { ijk_scratch_floats() }
    @inline(__always) func part(_ c: Int) -> FPtr { base + c * Self.floatsPerPart }
}

/// out[M,O] = inp[M,I] · W[O,I]ᵀ + b[O]   (accumulate: out += …; residual: out = residual + …,
/// computed as (residual + b) + inp·Wᵀ, the same floats as copying residual and accumulating).
/// Few rows (one image at inference): each thread takes every row and a block of output
/// columns, packing only its rows of W; otherwise each thread takes a block of rows.
/// packed: W is packed (PackedWeights) and these are the calls' scratch; each thread then takes
/// a block of columns whatever the rows (the weights are already packed, A is packed per part).
func linearForward(_ out: FPtr, _ inp: CFPtr, _ weight: CFPtr, _ bias: CFPtr?,
                   _ M: Int, _ I: Int, _ O: Int, accumulate: Bool = false, residual: CFPtr? = nil,
                   packed: PackScratch? = nil, _ ex: Exec) {
    /// rows × columns block [r0, r0+m) × cols of the product, bias and residual included
    struct Block {
        let out: FPtr, inp: CFPtr, weight: CFPtr, bias: CFPtr?, I: Int, O: Int, accumulate: Bool, residual: CFPtr?
        let packed: PackScratch?
        @inline(__always)
        func run(rows r0: Int, _ m: Int, cols: Range<Int>, part: Int = 0) {
            let c0 = cols.lowerBound, n = cols.count
            let o = out + r0 * O + c0
            var beta: Float = accumulate ? 1 : 0
            if let residual {
                let res = residual + r0 * O + c0
                for r in 0..<m {
                    let row = o + r * O, src = res + r * O
                    if let bias { for c in 0..<n { row[c] = src[c] + bias[c0 + c] } } else { row.update(from: src, count: n) }
                }
                beta = 1
            } else if let bias {
                for r in 0..<m {
                    let row = o + r * O
                    if accumulate { for c in 0..<n { row[c] += bias[c0 + c] } } else { row.update(from: bias + c0, count: n) }
                }
                beta = 1
            }
            if let packed {
                ijk_sgemm_packed(m, I, inp + r0 * I, I, weight, c0, c0 + n, out + r0 * O, O, beta != 0 ? 1 : 0,
                                 packed.part(part))
            } else {
                sgemm(false, true, m, n, I, 1, inp + r0 * I, I, weight + c0 * I, I, beta, o, O)
            }
        }
    }
    struct Rows: ChunkBody {
        let b: Block
        func callAsFunction(_: Int, _ rows: Range<Int>) { b.run(rows: rows.lowerBound, rows.count, cols: 0..<b.O) }
    }
    struct Columns: ChunkBody {
        let b: Block, M: Int
        func callAsFunction(_ c: Int, _ cols: Range<Int>) { b.run(rows: 0, M, cols: cols, part: c) }
    }
    let b = Block(out: out, inp: inp, weight: weight, bias: bias, I: I, O: O, accumulate: accumulate, residual: residual,
                  packed: packed)
    let parts = packed.map { min($0.parts, columnParts(rows: M, cols: O, depth: I, ex, anyRows: true)) }
        ?? columnParts(rows: M, cols: O, depth: I, ex)
    if parts > 1 {
        ex.pool.run(tasks: parts, ColumnTask(body: Columns(b: b, M: M), n: O, parts: parts))
    } else if packed != nil {
        b.run(rows: 0, M, cols: 0..<O)   // one part: its scratch is the only one there may be
    } else {
        ex.forEach(M, grain: rowGrain(2 * I * O), Rows(b: b))
    }
}

/// dinp[M,I] = dout[M,O] · W[O,I] (+ dinp if accumulate); dW[O,I] += doutᵀ · inp; db[O] += Σ_rows dout.
func linearBackward(_ dinp: FPtr?, _ dweight: FPtr, _ dbias: FPtr?, _ dout: CFPtr, _ inp: CFPtr,
                    _ weight: CFPtr, _ M: Int, _ I: Int, _ O: Int, accumulate: Bool = false, _ ex: Exec) {
    if let dinp { linearBackwardInput(dinp, dout, weight, M, I, O, accumulate: accumulate, ex) }
    linearBackwardWeight(dweight, dbias, dout, inp, M, I, O, ex)
}

/// The input half of linearBackward: dinp[M,I] = dout[M,O] · W[O,I] (+ dinp if accumulate).
func linearBackwardInput(_ dinp: FPtr, _ dout: CFPtr, _ weight: CFPtr, _ M: Int, _ I: Int, _ O: Int,
                         accumulate: Bool = false, _ ex: Exec) {
    let parts = columnParts(rows: M, cols: I, depth: O, ex)
    if parts > 1 {
        // few rows: each thread takes all rows and a block of columns, packing only its columns of W
        struct Columns: ChunkBody {
            let dinp: FPtr, dout: CFPtr, weight: CFPtr, M: Int, I: Int, O: Int, accumulate: Bool
            func callAsFunction(_: Int, _ cols: Range<Int>) {
                sgemm(false, false, M, cols.count, O, 1, dout, O, weight + cols.lowerBound, I,
                      accumulate ? 1 : 0, dinp + cols.lowerBound, I)
            }
        }
        ex.pool.run(tasks: parts, ColumnTask(body: Columns(dinp: dinp, dout: dout, weight: weight, M: M, I: I, O: O,
                                                           accumulate: accumulate), n: I, parts: parts))
        return
    }
    struct Body: ChunkBody {
        let dinp: FPtr, dout: CFPtr, weight: CFPtr, I: Int, O: Int, accumulate: Bool
        func callAsFunction(_: Int, _ rows: Range<Int>) {
            sgemm(false, false, rows.count, I, O, 1, dout + rows.lowerBound * O, O, weight, I,
                  accumulate ? 1 : 0, dinp + rows.lowerBound * I, I)
        }
    }
    // one block per thread up to 512 rows each (every block packs all of W), then smaller blocks
    let grain = max(rowGrain(2 * I * O), min(512, (M + ex.threads - 1) / ex.threads))
    ex.forEach(M, grain: grain, Body(dinp: dinp, dout: dout, weight: weight, I: I, O: O, accumulate: accumulate))
}

/// The parameter half of linearBackward: dW[O,I] += doutᵀ · inp; db[O] += Σ_rows dout.
/// With several threads and many rows the sum over rows is split into one block per thread
/// (each thread packs only its own rows of dout and inp, instead of every thread packing all of
/// inp), and the per-thread partial sums are added in thread order (deterministic for a given
/// thread count). Otherwise the output rows of dW are split.
func linearBackwardWeight(_ dweight: FPtr, _ dbias: FPtr?, _ dout: CFPtr, _ inp: CFPtr,
                          _ M: Int, _ I: Int, _ O: Int, _ ex: Exec) {
    let parts = ex.threads == 1 ? 1 : min(ex.threads, M / 512)
    if parts >= 2, let buf = try? ex.scratch.ensure(parts * (O * I + O)) {
        // part c: partial dW, db of rows M·c/parts ..< M·(c+1)/parts into buf + c·(O·I + O)
        struct Partial: ChunkBody {
            let buf: FPtr, dout: CFPtr, inp: CFPtr, I: Int, O: Int, bias: Bool
            func callAsFunction(_ c: Int, _ rows: Range<Int>) {
                let pw = buf + c * (O * I + O), pb = pw + O * I
                sgemm(true, false, O, I, rows.count, 1, dout + rows.lowerBound * O, O, inp + rows.lowerBound * I, I, 0, pw, I)
                if bias {
                    pb.update(repeating: 0, count: O)
                    columnSumAccumulate(pb, dout + rows.lowerBound * O, rows.count, O, ld: O)
                }
            }
        }
        // the parts summed in order into dW (entries 0..<O·I) and db (the rest)
        struct Reduce: ChunkBody {
            let buf: CFPtr, dweight: FPtr, dbias: FPtr?, parts: Int, per: Int, OI: Int
            func callAsFunction(_: Int, _ r: Range<Int>) {
                for j in r {
                    var sum = buf[j]
                    for c in 1..<parts { sum += buf[c * per + j] }
                    if j < OI { dweight[j] += sum } else if let dbias { dbias[j - OI] += sum }
                }
            }
        }
        let per = O * I + O
        ex.pool.run(tasks: parts, ChunkTask(body: Partial(buf: buf, dout: dout, inp: inp, I: I, O: O, bias: dbias != nil),
                                            n: M, chunks: parts))
        ex.forEach(dbias != nil ? per : O * I, grain: 16384,
                   Reduce(buf: buf, dweight: dweight, dbias: dbias, parts: parts, per: per, OI: O * I))
        return
    }
    // No reduction across threads: each thread takes a block of dW's rows (output features)
    // or of its columns (input features), whichever repacks less. Every part packs all of the
    // other operand: all of inp ([M, I]) when split by rows, all of dout ([M, O]) by columns.
    let colParts = O < I ? columnParts(rows: M, cols: I, depth: O, ex, anyRows: true) : 0
    if colParts > 1 {
        struct InputColumns: ChunkBody {
            let dweight: FPtr, dbias: FPtr?, dout: CFPtr, inp: CFPtr, M: Int, I: Int, O: Int, parts: Int
            func callAsFunction(_ c: Int, _ cols: Range<Int>) {
                sgemm(true, false, O, cols.count, M, 1, dout, O, inp + cols.lowerBound, I, 1, dweight + cols.lowerBound, I)
                if let dbias {   // db's columns split evenly over the same parts
                    let o0 = O * c / parts, o1 = O * (c + 1) / parts
                    columnSumAccumulate(dbias + o0, dout + o0, M, o1 - o0, ld: O)
                }
            }
        }
        ex.pool.run(tasks: colParts, ColumnTask(body: InputColumns(dweight: dweight, dbias: dbias, dout: dout, inp: inp,
                                                                   M: M, I: I, O: O, parts: colParts),
                                                n: I, parts: colParts))
        return
    }
    struct OutputRows: ChunkBody {
        let dweight: FPtr, dbias: FPtr?, dout: CFPtr, inp: CFPtr, M: Int, I: Int, O: Int
        func callAsFunction(_: Int, _ cols: Range<Int>) {
            let o0 = cols.lowerBound, n = cols.count
            sgemm(true, false, n, I, M, 1, dout + o0, O, inp, I, 1, dweight + o0 * I, I)
            if let dbias { columnSumAccumulate(dbias + o0, dout + o0, M, n, ld: O) }
        }
    }
    // one block per thread: more blocks would pack inp more often
    let grain = max(8, rowGrain(2 * M * I), (O + ex.threads - 1) / ex.threads)
    ex.forEach(O, grain: grain, OutputRows(dweight: dweight, dbias: dbias, dout: dout, inp: inp, M: M, I: I, O: O))
}

/// Row count per thread under which a product's rows are too few to split (each row block
/// would repack the whole weight for little work).
let smallRowsPerThread = 256

/// How many column blocks to split a product with m rows and n output columns into: one per
/// thread (each ≥ 64 columns) when the rows are few (or `anyRows`) and the product is worth a
/// fork (≥ 2 MFLOP), else 0 (split the rows).
@inline(__always)
func columnParts(rows m: Int, cols n: Int, depth k: Int, _ ex: Exec, anyRows: Bool = false) -> Int {
    if ex.threads == 1 || (!anyRows && m >= smallRowsPerThread * ex.threads) || 2 * m * n * k < 2_000_000 { return 0 }
    let p = min(ex.threads, n / 64)
    return p >= 2 ? p : 0
}

/// Column block c of n columns split into `parts`, boundaries on multiples of 16 floats (a
/// 64-byte line, so threads writing neighbouring blocks of one row never share a line).
struct ColumnTask<B: ChunkBody>: PoolTask {
    let body: B, n: Int, parts: Int
    @inline(__always)
    func callAsFunction(_ c: Int, _ worker: Int) {
        let lo = c == 0 ? 0 : (n * c / parts) & ~15, hi = c == parts - 1 ? n : (n * (c + 1) / parts) & ~15
        if lo < hi { body(c, lo..<hi) }
    }
}

/// acc[0..<cols] += Σ_r x[r * ld + 0..<cols]
func columnSumAccumulate(_ acc: FPtr, _ x: CFPtr, _ rows: Int, _ cols: Int, ld: Int) {
    for r in 0..<rows {
        let row = x + r * ld
        for c in 0..<cols { acc[c] += row[c] }
    }
}
