import XCTest
@testable import IJEPACore

/// The transformer stack's output tail (the predictor's last layer skipping its context rows)
/// against the full stack: the same outputs on the tail rows, and the same input and parameter
/// gradients when the other rows' output gradient is zero.
final class StackTests: XCTestCase {
    /// Offsets of `depth` blocks laid out one after the other, and their float count.
    static func blockLayout(depth: Int, W: Int, hidden Hd: Int) -> ([BlockOffsets], Int) {
        var blocks: [BlockOffsets] = []
        var n = 0
        func take(_ c: Int) -> Int { defer { n += c }; return n }
        for _ in 0..<depth {
            var o = BlockOffsets()
            o.norm1W = take(W); o.norm1B = take(W); o.qkvW = take(3 * W * W); o.qkvB = take(3 * W)
            o.projW = take(W * W); o.projB = take(W); o.norm2W = take(W); o.norm2B = take(W)
            o.fc1W = take(Hd * W); o.fc1B = take(Hd); o.fc2W = take(W * Hd); o.fc2B = take(W)
            blocks.append(o)
        }
        return (blocks, n)
    }

    /// Forward chunks are evened out over the threads: 16 sequences of 36 rows on 2 threads are
    /// 2 chunks of 288 rows (not 504 + 72, where one thread would idle most of the time).
    func testChunksEvenedOutOverThreads() throws {
        let stack = TransformerStack()
        let shape = StackShape(S: 16, T: 36, W: 8, H: 2, hidden: 16, depth: 1)
        try stack.prepare(shape, training: false, threads: 2)
        XCTAssertEqual(stack.chunkRows, 288)
        try stack.prepare(shape, training: true, threads: 2)
        XCTAssertEqual(stack.chunkRows, 288)
        // many rows: chunks stay at most about chunkRowTarget
        try stack.prepare(StackShape(S: 256, T: 64, W: 8, H: 2, hidden: 16, depth: 1), training: false, threads: 2)
        XCTAssertLessThanOrEqual(stack.chunkRows, TransformerStack.chunkRowTarget)
        // an encoder's pass of 10 images of 197 rows: inference takes one chunk of 5 per thread
        // (5 chunks of 2 would leave a thread idle for one); training keeps chunks of about 512
        let pass = StackShape(S: 10, T: 197, W: 8, H: 2, hidden: 16, depth: 1)
        try stack.prepare(pass, training: false, threads: 2)
        XCTAssertEqual(stack.chunkRows, 985)
        try stack.prepare(pass, training: true, threads: 2)
        XCTAssertEqual(stack.chunkRows, 394)
    }

    /// The target encoder's last block on selected rows only (forwardInferenceSelected) against
    /// forwardInference: 40 images of 6 rows (several chunks), each with its own selection
    /// (including none and all), depth 1 and 3, 1 and 2 threads.
    func testSelectedRowsEqualFullInference() throws {
        let S = 40, T = 6, W = 8, H = 2, Hd = 16
        for depth in [1, 3] {
            for threads in [1, 2] {
                var rng = RNG(seed: UInt64(5 + depth))
                let (blocks, n) = Self.blockLayout(depth: depth, W: W, hidden: Hd)
                let P = HostTensor(randomArray(n, &rng, scale: 0.3))
                let x = randomArray(S * T * W, &rng)
                var selOff = [0], selRows = [Int32]()
                for s in 0..<S {
                    for r in 0..<T where s % 7 == 0 || (s % 5 != 1 && rng.uniform() < 0.4) { selRows.append(Int32(r)) }
                    selOff.append(selRows.count)
                }
                let shape = StackShape(S: S, T: T, W: W, H: H, hidden: Hd, depth: depth)
                let ex = Exec(threads: threads)
                let stack = TransformerStack()
                try stack.prepare(shape, training: false, threads: threads)
                stack.input.update(from: x, count: S * T * W)
                let y = stack.forwardInference(params: P.p, blocks: blocks, ex)
                var expected = [Float]()
                for s in 0..<S {
                    for j in selOff[s]..<selOff[s + 1] {
                        let r = s * T + Int(selRows[j])
                        expected += Array(UnsafeBufferPointer(start: y + r * W, count: W))
                    }
                }
                try stack.prepare(shape, training: false, threads: threads)
                stack.input.update(from: x, count: S * T * W)
                let out = HostTensor(zeros: selRows.count * W)
                selOff.withUnsafeBufferPointer { so in
                    selRows.withUnsafeBufferPointer { sr in
                        stack.forwardInferenceSelected(params: P.p, blocks: blocks, selOff: so.baseAddress!,
                                                       selRows: sr.baseAddress!, out: out.p, ex)
                    }
                }
                assertClose(out.array, expected, atol: 1e-6, rtol: 1e-5, "selected rows, depth \(depth), \(threads) thread(s)")
            }
        }
    }

    /// Ragged sequences (lengths 5, 7, 4, 9), tail 3, W 8, 2 heads, hidden 16, depth 1 and 2.
    func testOutputTailEqualsFullStack() throws {
        let lengths = [5, 7, 4, 9], k = 3, W = 8, H = 2, Hd = 16
        for depth in [1, 2] {
            for threads in [1, 2] {
                var rng = RNG(seed: UInt64(17 + depth))
                let (blocks, n) = Self.blockLayout(depth: depth, W: W, hidden: Hd)
                let params = randomArray(n, &rng, scale: 0.3)
                let M = lengths.reduce(0, +), Mq = lengths.count * k
                let x = randomArray(M * W, &rng)
                let dyTail = randomArray(Mq * W, &rng)
                let shape = StackShape(S: lengths.count, T: 9, W: W, H: H, hidden: Hd, depth: depth)
                let ex = Exec(threads: threads)

                func run(tail: Int) throws -> (out: [Float], dx: [Float], grads: [Float]) {
                    let stack = TransformerStack()
                    try stack.prepare(shape, lengths: lengths, training: true, threads: threads, outputTail: tail)
                    stack.input.update(from: x, count: M * W)
                    let P = HostTensor(params), G = HostTensor(zeros: n)
                    let y = stack.forward(params: P.p, blocks: blocks, ex)
                    let dres = try stack.prepareBackward()
                    var out = [Float](), row = 0
                    if tail > 0 {
                        out = Array(UnsafeBufferPointer(start: y, count: Mq * W))
                        dres.update(from: dyTail, count: Mq * W)
                    } else {
                        dres.update(repeating: 0, count: M * W)
                        for (s, t) in lengths.enumerated() {   // the tail rows of the full output
                            out += Array(UnsafeBufferPointer(start: y + (row + t - k) * W, count: k * W))
                            for i in 0..<(k * W) { dres[(row + t - k) * W + i] = dyTail[s * k * W + i] }
                            row += t
                        }
                    }
                    let dx = try stack.backward(params: P.p, grads: G.p, blocks: blocks, ex)
                    return (out, Array(UnsafeBufferPointer(start: dx, count: M * W)), G.array)
                }
                let full = try run(tail: 0), tailed = try run(tail: k)
                let what = "depth \(depth), \(threads) thread(s)"
                assertClose(tailed.out, full.out, atol: 1e-6, rtol: 1e-5, "tail outputs, \(what)")
                assertClose(tailed.dx, full.dx, atol: 1e-6, rtol: 1e-5, "input gradient, \(what)")
                assertClose(tailed.grads, full.grads, atol: 1e-6, rtol: 1e-5, "parameter gradients, \(what)")
                // the skipped rows do matter as keys and values: a change in a context row
                // changes the tail outputs
                XCTAssertGreaterThan(full.dx.prefix(W).map { abs($0) }.max()!, 1e-4, "context rows get a gradient")
            }
        }
    }
}
