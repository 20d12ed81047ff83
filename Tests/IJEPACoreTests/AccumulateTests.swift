import XCTest
@testable import IJEPACore

/// Gradient accumulation: K micro-batches of one step equal one step of the whole batch (one
/// mask draw, each micro-batch its rows, gradients weighted by their share), uniform and ragged.
final class AccumulateTests: XCTestCase {
    func config(ragged: Bool) -> ModelConfig {
        var c = ModelGradientTests.tinyConfig(nenc: 2, npred: 3)
        c.imageSize = 16; c.minKeep = 2; c.raggedContext = ragged
        return c
    }

    func images(_ c: ModelConfig, _ B: Int, seed: UInt64) -> [Float] {
        var rng = RNG(seed: seed)
        return randomArray(B * c.inChans * c.imageSize * c.imageSize, &rng)
    }

    func testMicroBatchesEqualTheWholeBatch() throws {
        for ragged in [false, true] {
            let c = config(ragged: ragged)
            let whole = try Model(config: c), micro = try Model(config: c)
            let B = 7
            for step in 0..<3 {
                let x = images(c, B, seed: UInt64(step + 1))
                let a = try whole.trainStep(images: x, batch: B)
                let b = try micro.trainStep(images: x, batch: B, microBatch: 3)   // 3 + 3 + 1
                let tag = "ragged \(ragged) step \(step)"
                // (from step 1 on, the weights differ by the rounding of the steps before)
                XCTAssertEqual(b.loss, a.loss, accuracy: (step == 0 ? 1e-6 : 1e-5) * abs(a.loss), "loss, " + tag)
                XCTAssertEqual(b.gradNorm, a.gradNorm, accuracy: 1e-5 * a.gradNorm, "gradient norm, " + tag)
                XCTAssertEqual(micro.collator.counter, whole.collator.counter, "one mask draw per step, " + tag)
                for (buf, name) in [(\Model.params, "params"), (\Model.target, "target"), (\Model.adamV, "adam v")] {
                    let count = name == "target" ? whole.layout.encoderCount : whole.layout.totalCount
                    let p = Array(UnsafeBufferPointer(start: micro[keyPath: buf].ptr, count: count))
                    let q = Array(UnsafeBufferPointer(start: whole[keyPath: buf].ptr, count: count))
                    assertCloseToScale(p, q, tol: 1e-5, "\(name), " + tag)
                }
            }
        }
    }

    func testAccumulationRulesAndFailures() throws {
        let c = config(ragged: false)
        let m = try Model(config: c)
        let x = images(c, 4, seed: 9)
        // the first batch of a step does not accumulate; weights are finite and positive
        XCTAssertThrowsError(try m.forwardBackward(images: x, batch: 4, masks: nil, accumulate: true)) { e in
            XCTAssertEqual((e as! IJEPAError).status, -6)
        }
        XCTAssertThrowsError(try m.forwardBackward(images: x, batch: 4, masks: nil, weight: 0))
        XCTAssertThrowsError(try m.forwardBackward(images: x, batch: 4, masks: nil, weight: .nan))
        XCTAssertThrowsError(try m.trainStep(images: x, batch: 4, microBatch: 0))
        // a failing micro-batch (NaN in the last one) leaves everything as it was
        let before = Array(UnsafeBufferPointer(start: m.params.ptr, count: m.layout.totalCount))
        let counter = m.collator.counter, step = m.step
        var bad = x
        bad[bad.count - 1] = .nan
        XCTAssertThrowsError(try m.trainStep(images: bad, batch: 4, microBatch: 2)) { e in
            XCTAssertEqual((e as! IJEPAError).status, -7)
        }
        XCTAssertEqual(Array(UnsafeBufferPointer(start: m.params.ptr, count: m.layout.totalCount)), before)
        XCTAssertEqual(m.collator.counter, counter)
        XCTAssertEqual(m.step, step)
        XCTAssertFalse(m.gradsReady)
        // weighted halves by hand equal the whole batch's gradient
        let w = try Model(config: c)
        let masks = try w.sampleMasks(batch: 4)
        try w.forwardBackward(images: x, batch: 4, masks: masks)
        let g = Array(UnsafeBufferPointer(start: w.grads.ptr, count: w.layout.totalCount))
        let loss = w.lastLoss
        try x.withUnsafeBufferPointer { p in
            let per = c.inChans * c.imageSize * c.imageSize
            try w.forwardBackward(images: p.baseAddress!, batch: 1, masks: masks.rows(0, 1), weight: 0.25)
            try w.forwardBackward(images: p.baseAddress! + per, batch: 3, masks: masks.rows(1, 3), accumulate: true, weight: 0.75)
        }
        assertCloseToScale(Array(UnsafeBufferPointer(start: w.grads.ptr, count: w.layout.totalCount)), g, tol: 1e-5, "1 + 3")
        XCTAssertEqual(w.lastLoss, loss, accuracy: 1e-6 * loss)
    }
}
