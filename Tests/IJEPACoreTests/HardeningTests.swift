import XCTest
@testable import IJEPACore

/// Inputs that must give a clear error and leave the model exactly as it was.
final class HardeningTests: XCTestCase {
    func snapshot(_ m: Model) -> [[Float]] {
        let n = m.layout.totalCount
        return [m.params, m.grads, m.adamM, m.adamV].map { Array(UnsafeBufferPointer(start: $0.ptr, count: n)) }
            + [Array(UnsafeBufferPointer(start: m.target.ptr, count: m.layout.encoderCount))]
    }

    func testTooLargeModelFailsBeforeAllocating() {
        var c = ModelConfig()
        c.embedDim = 16384; c.depth = 512; c.numHeads = 16
        XCTAssertThrowsError(try Model(config: c)) { e in
            XCTAssertEqual((e as? IJEPAError)?.status, -3, "\(e)")
        }
    }

    func testTooLargeBatchFailsBeforeAllocating() throws {
        let m = try Model(config: ModelConfig.preset("vit_tiny")!)
        let input = [Float](repeating: 0, count: 16)
        var out = [Float](repeating: 0, count: 16)
        // the memory check comes before any read of the (here too short) inputs
        XCTAssertThrowsError(try input.withUnsafeBufferPointer { i in
            try out.withUnsafeMutableBufferPointer { o in
                try m.encode(images: i.baseAddress!, batch: 1 << 20, encoder: .target, tokens: nil, pooled: o.baseAddress!)
            }
        }) { e in
            XCTAssertEqual((e as? IJEPAError)?.status, -3, "\(e)")
            XCTAssert((e as? IJEPAError)?.message.contains("smaller batch") ?? false)
        }
    }

    func testNonFiniteImagesLeaveEverythingUnchanged() throws {
        var c = ModelGradientTests.tinyConfig()
        c.imageSize = 16; c.minKeep = 2
        let m = try Model(config: c)
        var rng = RNG(seed: 2)
        var images = randomArray(4 * c.inChans * 16 * 16, &rng)
        _ = try images.withUnsafeBufferPointer { try m.trainStep(images: $0.baseAddress!, batch: 4) }
        let before = snapshot(m), step = m.step, counter = m.collator.counter
        for bad in [Float.nan, .infinity, -.infinity] {
            images[17] = bad
            XCTAssertThrowsError(try images.withUnsafeBufferPointer { try m.trainStep(images: $0.baseAddress!, batch: 4) }) { e in
                XCTAssertEqual((e as? IJEPAError)?.status, -7)
            }
            XCTAssertEqual(m.step, step)
            let after = snapshot(m)
            XCTAssertEqual(after[0], before[0]); XCTAssertEqual(after[2], before[2])
            XCTAssertEqual(after[3], before[3]); XCTAssertEqual(after[4], before[4])
        }
        _ = counter
    }

    func testNonFiniteGradientsLeaveEverythingUnchanged() throws {
        var c = ModelGradientTests.tinyConfig()
        c.imageSize = 16; c.minKeep = 2
        let m = try Model(config: c)
        var rng = RNG(seed: 2)
        let images = randomArray(4 * c.inChans * 16 * 16, &rng)
        let masks = try m.sampleMasks(batch: 4)
        try images.withUnsafeBufferPointer { _ = try m.forwardBackward(images: $0.baseAddress!, batch: 4, masks: masks) }
        // a caller (e.g. an all-reduce) poisons the gradients
        m.grads.ptr[5] = .nan
        let before = snapshot(m)
        XCTAssertThrowsError(try m.optimizerStep()) { e in XCTAssertEqual((e as? IJEPAError)?.status, -7) }
        let after = snapshot(m)
        XCTAssertEqual(after[0], before[0]); XCTAssertEqual(after[2], before[2])
        XCTAssertEqual(after[3], before[3]); XCTAssertEqual(after[4], before[4])
        XCTAssertEqual(m.step, 0)
        // huge weights overflow the forward: the loss or the gradients are not finite
        for i in 0..<m.layout.totalCount { m.params.ptr[i] *= 1e30 }
        XCTAssertThrowsError(try images.withUnsafeBufferPointer { try m.trainStep(images: $0.baseAddress!, batch: 4, masks: masks) }) { e in
            XCTAssertEqual((e as? IJEPAError)?.status, -7, "\(e)")
        }
        XCTAssertEqual(m.step, 0)
    }
}
