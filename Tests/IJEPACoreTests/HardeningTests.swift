import XCTest
@testable import IJEPACore

/// Inputs that must give a clear error and leave the model exactly as it was.
final class HardeningTests: XCTestCase {
    func snapshot(_ m: Model) -> [[Float]] {
        let n = m.layout.totalCount
        return [m.params, m.grads, m.adamM, m.adamV].map { Array(UnsafeBufferPointer(start: $0.ptr, count: n)) }
            + [Array(UnsafeBufferPointer(start: m.target.ptr, count: m.layout.encoderCount))]
    }

    /// The tiny model of these tests (16 px, min_keep 2) and its config.
    func tinyModel() throws -> (Model, ModelConfig) {
        var c = ModelGradientTests.tinyConfig()
        c.imageSize = 16; c.minKeep = 2
        return (try Model(config: c), c)
    }

    /// Parameters, AdamW moments and target encoder as in `before` (the gradients may differ).
    func assertUnchanged(_ m: Model, _ before: [[Float]], file: StaticString = #filePath, line: UInt = #line) {
        let after = snapshot(m)
        for i in [0, 2, 3, 4] { XCTAssertEqual(after[i], before[i], "buffer \(i)", file: file, line: line) }
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
        let (m, c) = try tinyModel()
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
            XCTAssertEqual(m.collator.counter, counter)
            assertUnchanged(m, before)
        }
    }

    /// forward_backward's gradient check (a task per tensor) sees a NaN or Inf in any tensor,
    /// the last one included, at 1 and 2 threads.
    func testGradientCheckCoversEveryTensor() throws {
        for threads in [1, 2] {
            var c = ModelGradientTests.tinyConfig()
            c.nThreads = threads
            let m = try Model(config: c)
            m.grads.zero(m.layout.totalCount)
            XCTAssertNoThrow(try m.checkGradientsFinite())
            for (i, bad) in [(0, Float.nan), (m.layout.totalCount - 1, .infinity), (m.layout.encoderCount, -.infinity)] {
                m.grads.ptr[i] = bad
                XCTAssertThrowsError(try m.checkGradientsFinite(), "index \(i), \(threads) thread(s)") { e in
                    XCTAssertEqual((e as? IJEPAError)?.status, -7)
                }
                m.grads.ptr[i] = 0
            }
        }
    }

    func testNonFiniteGradientsLeaveEverythingUnchanged() throws {
        let (m, c) = try tinyModel()
        var rng = RNG(seed: 2)
        let images = randomArray(4 * c.inChans * 16 * 16, &rng)
        let masks = try m.sampleMasks(batch: 4)
        try images.withUnsafeBufferPointer { _ = try m.forwardBackward(images: $0.baseAddress!, batch: 4, masks: masks) }
        // a caller (e.g. an all-reduce) poisons the gradients
        m.grads.ptr[5] = .nan
        let before = snapshot(m)
        XCTAssertThrowsError(try m.optimizerStep()) { e in XCTAssertEqual((e as? IJEPAError)?.status, -7) }
        assertUnchanged(m, before)
        XCTAssertEqual(m.step, 0)
        // huge weights overflow the forward: the loss or the gradients are not finite
        for i in 0..<m.layout.totalCount { m.params.ptr[i] *= 1e30 }
        XCTAssertThrowsError(try images.withUnsafeBufferPointer { try m.trainStep(images: $0.baseAddress!, batch: 4, masks: masks) }) { e in
            XCTAssertEqual((e as? IJEPAError)?.status, -7, "\(e)")
        }
        XCTAssertEqual(m.step, 0)
    }

    /// B8: a finite but huge learning rate or weight decay used to return OK and leave the model
    /// full of Inf. Now every step either succeeds with everything finite or fails with nothing
    /// changed, and an update that overflows is refused by the optimizer itself.
    func testOverflowingUpdateIsRefusedWithNothingChanged() throws {
        let (m, c) = try tinyModel()
        var rng = RNG(seed: 3)
        let images = randomArray(4 * c.inChans * 16 * 16, &rng)
        let masks = try m.sampleMasks(batch: 4)
        _ = try images.withUnsafeBufferPointer { try m.trainStep(images: $0.baseAddress!, batch: 4, masks: masks) }
        func allFinite() -> Bool { snapshot(m).allSatisfy { $0.allSatisfy { $0.isFinite } } }
        var refusedByOptimizer = 0
        for (lr, wd) in [(Float(3e38), Float(3e38)), (Float(1e-3), Float(3e38)), (Float(3e38), Float(-1)),
                         (Float(3e38), Float(-1)), (Float(4e19), Float(1e19)), (Float(3e38), Float(-1))] {
            m.overrideLR = lr; m.overrideWD = wd
            let before = snapshot(m), step = m.step
            do {
                _ = try images.withUnsafeBufferPointer { try m.trainStep(images: $0.baseAddress!, batch: 4, masks: masks) }
                XCTAssertEqual(m.step, step + 1)
                XCTAssert(allFinite(), "a step that returned OK left non-finite values (lr \(lr), wd \(wd))")
            } catch let e as IJEPAError {
                XCTAssertEqual(e.status, -7, "\(e)")
                if e.message.contains("would make") { refusedByOptimizer += 1 }
                XCTAssertEqual(m.step, step)
                assertUnchanged(m, before)
            }
        }
        XCTAssertGreaterThanOrEqual(refusedByOptimizer, 1, "the overflowing updates must be refused by the optimizer check")
        // the direct optimizer path: gradients ready, an overflowing weight decay
        let fresh = try Model(config: c)
        try images.withUnsafeBufferPointer { _ = try fresh.forwardBackward(images: $0.baseAddress!, batch: 4, masks: masks) }
        fresh.overrideLR = 3e38; fresh.overrideWD = 3e38
        let before = snapshot(fresh)
        XCTAssertThrowsError(try fresh.optimizerStep()) { e in
            XCTAssertEqual((e as? IJEPAError)?.status, -7)
            XCTAssert((e as? IJEPAError)?.message.contains("nothing was updated") ?? false, "\(e)")
        }
        XCTAssertEqual(snapshot(fresh)[0], before[0]); XCTAssertEqual(fresh.step, 0)
        fresh.overrideLR = -1; fresh.overrideWD = -1
        XCTAssertNoThrow(try fresh.optimizerStep())   // the gradients are still ready and usable
        XCTAssertEqual(fresh.step, 1)
    }

    /// Fuzz bug B12: a checkpoint with mask counter 2^62 - 1 loaded, a step advanced the counter
    /// to 2^62 and the save wrote a file the load refused. Every state a step leaves must save
    /// and load: the sampler's counter wraps to 0 at the limit, and the step refuses to reach it.
    func testCountersAtTheirLimitStaySaveableAndLoadable() throws {
        let (m, c) = try tinyModel()
        let path = "/tmp/ijepa-limit-\(getpid()).safetensors"
        defer { unlink(path) }
        var rng = RNG(seed: 3)
        let images = randomArray(2 * c.inChans * 16 * 16, &rng)
        m.step = stateCounterLimit - 2
        m.collator.counter = stateCounterLimit - 1
        _ = try images.withUnsafeBufferPointer { try m.trainStep(images: $0.baseAddress!, batch: 2) }
        XCTAssertEqual(m.step, stateCounterLimit - 1)
        XCTAssertEqual(m.collator.counter, 0)
        try m.save(to: path, flags: [.weights, .trainingState])
        let r = try Model.load(from: path)
        XCTAssertEqual(r.step, m.step)
        XCTAssertEqual(r.collator.counter, 0)
        // the next step would pass the limit: a state error, nothing updated, still saveable
        let before = snapshot(m)
        XCTAssertThrowsError(try images.withUnsafeBufferPointer { try m.trainStep(images: $0.baseAddress!, batch: 2) }) { e in
            XCTAssertEqual((e as? IJEPAError)?.status, -6, "\(e)")
            XCTAssert((e as? IJEPAError)?.message.contains("cannot advance") ?? false, "\(e)")
        }
        XCTAssertEqual(m.step, stateCounterLimit - 1)
        XCTAssertEqual(m.collator.counter, 0)
        assertUnchanged(m, before)
        try m.save(to: path, flags: [.weights, .trainingState])
        XCTAssertEqual(try Model.load(from: path).step, stateCounterLimit - 1)
    }

    /// A model whose parameters were made non-finite from outside (the params view is writable)
    /// must not overwrite a loadable checkpoint with one the loader refuses.
    func testSaveRefusesNonFiniteTensorsAndKeepsTheOldFile() throws {
        let (m, _) = try tinyModel()
        let path = "/tmp/ijepa-hardening-\(getpid()).safetensors"
        defer { unlink(path) }
        try m.save(to: path, flags: [.weights, .trainingState])
        let good = try readWholeFile(path)
        m.params.ptr[7] = .infinity
        XCTAssertThrowsError(try m.save(to: path, flags: [.weights])) { e in
            XCTAssertEqual((e as? IJEPAError)?.status, -7, "\(e)")
            XCTAssert((e as? IJEPAError)?.message.contains("unchanged") ?? false, "\(e)")
        }
        XCTAssertEqual(try readWholeFile(path), good)
        m.params.ptr[7] = 0
        m.adamV.ptr[3] = .nan
        XCTAssertThrowsError(try m.save(to: path, flags: [.weights, .trainingState])) { e in
            XCTAssertEqual((e as? IJEPAError)?.status, -7, "\(e)")
        }
        XCTAssertEqual(try readWholeFile(path), good)
        try m.save(to: path, flags: [.weights])   // the weights alone are finite
    }

    /// FloatBuffer allocations that the system refuses are errors, not traps.
    func testRefusedAllocationIsOutOfMemory() {
        XCTAssertThrowsError(try FloatBuffer(count: Int.max / 2)) { e in
            XCTAssertEqual((e as? IJEPAError)?.status, -3, "\(e)")
        }
        let b = FloatBuffer()
        XCTAssertThrowsError(try b.ensure(1 << 60)) { e in XCTAssertEqual((e as? IJEPAError)?.status, -3) }
        XCTAssertNoThrow(try b.ensure(16))
        XCTAssertEqual(b.capacity, 16)
    }

    /// B9: RFC 8259 numbers have no leading zeros (Python's json and the safetensors crate agree).
    func testJSONLeadingZerosAreFormatErrors() throws {
        for bad in ["[04]", "{\"a\":00}", "[-01.5]", "[040010000000474974513]"] {
            XCTAssertThrowsError(try JSONValue.parse(Array(bad.utf8)), bad) { e in
                XCTAssertEqual((e as? IJEPAError)?.status, -5, "\(e)")
            }
        }
        for good in ["[0]", "[0.5]", "[-0]", "[10]", "[0e3]", "[100]"] {
            XCTAssertNoThrow(try JSONValue.parse(Array(good.utf8)), good)
        }
    }
}
