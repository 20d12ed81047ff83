import Foundation
import IJEPA
import XCTest

/// The Swift API of gradient accumulation: `trainStep(images:batch:microBatch:masks:)` equals one
/// step of the whole batch (uniform and ragged), `forwardBackward(weight:accumulate:)` by hand
/// equals the whole batch's gradient, and the error rules.
final class AccumulateAPITests: XCTestCase {
    let batch = 5, micro = 2            // micro-batches of 2, 2 and 1

    /// Every buffer within `tol` x its largest magnitude.
    func assertClose(_ a: Model, _ b: Model, tol: Float = 1e-5, _ what: String,
                     file: StaticString = #filePath, line: UInt = #line) {
        for buf in [Model.Buffer.parameters, .target, .adamM, .adamV] {
            let p = a.withBuffer(buf) { v, _ in Array(v) }, q = b.withBuffer(buf) { v, _ in Array(v) }
            let scale = p.map(abs).max() ?? 0
            XCTAssertLessThanOrEqual(maxAbsDiff(p, q), tol * scale, "\(what): \(buf)", file: file, line: line)
        }
    }

    /// Images first..<first+count of a batch's masks, as masks of their own (what a micro-batch takes).
    func rows(_ m: Masks, _ first: Int, _ count: Int) throws -> Masks {
        let pred = (0..<m.numPred).map { j in (first..<(first + count)).map { Array(m.predIndices(mask: j, image: $0)) } }
        let enc = (0..<m.numEnc).map { j in (first..<(first + count)).map { Array(m.encIndices(mask: j, image: $0)) } }
        return m.isRagged ? try Masks(raggedEnc: enc, pred: pred) : try Masks(enc: enc, pred: pred)
    }

    func testMicroBatchesEqualOneStepOfTheWholeBatch() throws {
        for ragged in [false, true] {
            var c = tinyConfig()
            c.raggedContext = ragged
            let whole = try Model(config: c), split = try Model(config: c)
            for step in 0..<2 {
                let images = syntheticImages(batch: batch, config: c, seed: UInt64(step + 3))
                let a = try whole.trainStep(images: images, batch: batch)
                let b = try split.trainStep(images: images, batch: batch, microBatch: micro)
                XCTAssertEqual(b.step, a.step)
                XCTAssertEqual(b.loss, a.loss, accuracy: 1e-5 * a.loss, "ragged \(ragged) step \(step)")
                XCTAssertEqual(b.gradNorm, a.gradNorm, accuracy: 1e-5 * a.gradNorm)
            }
            assertClose(whole, split, "ragged \(ragged)")
            XCTAssertEqual(try split.sampleMasks(batch: batch, ragged: ragged),
                           try whole.sampleMasks(batch: batch, ragged: ragged), "one mask draw per step")
        }
    }

    func testWeightedMicroBatchesByHandEqualTheWholeBatchGradient() throws {
        for ragged in [false, true] {
            let c = tinyConfig()
            let m = try Model(config: c)
            let images = syntheticImages(batch: batch, config: c, seed: 9)
            let masks = try m.sampleMasks(batch: batch, ragged: ragged)
            let loss = try m.forwardBackward(images: images, batch: batch, masks: masks)
            let g = m.withGradients { v, _ in Array(v) }
            var total: Float = 0
            var first = 0
            for count in [2, 3] {
                let part = Array(images[(first * c.floatsPerImage)..<((first + count) * c.floatsPerImage)])
                let w = Float(count) / Float(batch)
                total += w * (try m.forwardBackward(images: part, batch: count, masks: try rows(masks, first, count),
                                                    weight: w, accumulate: first > 0))
                first += count
            }
            XCTAssertTrue(m.hasPendingGradients)
            let acc = m.withGradients { v, _ in Array(v) }
            XCTAssertLessThanOrEqual(maxAbsDiff(acc, g), 1e-5 * (g.map(abs).max() ?? 0), "ragged \(ragged)")
            XCTAssertEqual(total, loss, accuracy: 1e-6 * loss)
            let s = try m.optimizerStep()
            XCTAssertEqual(s.loss, loss, accuracy: 1e-6 * loss, "the step reports the weighted sum")
        }
    }

    func testAccumulationErrors() throws {
        let c = tinyConfig()
        let m = try Model(config: c)
        let images = syntheticImages(batch: batch, config: c)
        let p0 = m.parameters()
        // a NaN image in the last micro-batch: nothing changes, the mask generator included
        var bad = images
        bad[bad.count - 1] = .nan
        assertThrows(-7, "NaN in the last micro-batch") { () throws(IJEPAError) in
            try m.trainStep(images: bad, batch: batch, microBatch: micro)
        }
        XCTAssertEqual(m.step, 0)
        XCTAssertEqual(m.parameters(), p0)
        XCTAssertEqual(try m.sampleMasks(batch: batch), try Model(config: c).sampleMasks(batch: batch))
        assertThrows(-1, "microBatch 0") { () throws(IJEPAError) in
            try m.trainStep(images: images, batch: batch, microBatch: 0)
        }
        assertThrows(-2, "image count") { () throws(IJEPAError) in
            try m.trainStep(images: Array(images.dropLast()), batch: batch, microBatch: micro)
        }
        assertThrows(-6, "accumulate without a pending forwardBackward") { () throws(IJEPAError) in
            try m.forwardBackward(images: images, batch: batch, accumulate: true)
        }
        for w: Float in [0, -1, .nan, .infinity] {
            assertThrows(-1, "weight \(w)") { () throws(IJEPAError) in
                try m.forwardBackward(images: images, batch: batch, weight: w)
            }
        }
        // any failure drops the pending gradients, an argument error included
        try m.forwardBackward(images: images, batch: batch)
        assertThrows(-2, "image count, accumulating") { () throws(IJEPAError) in
            try m.forwardBackward(images: Array(images.dropLast()), batch: batch, accumulate: true)
        }
        XCTAssertFalse(m.hasPendingGradients)
        assertThrows(-6, "optimizer step after a failed accumulation") { () throws(IJEPAError) in try m.optimizerStep() }
        XCTAssertEqual(m.step, 0)
    }
}
