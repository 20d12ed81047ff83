import Foundation
import IJEPA
import XCTest

final class ModelTests: XCTestCase {
    let batch = 2

    func testTrainStepsAdvanceStepAndChangeParameters() throws {
        let c = tinyConfig()
        let model = try Model(config: c)
        XCTAssertEqual(model.step, 0)
        XCTAssertEqual(model.numPatches, 36)
        XCTAssertEqual(model.gridSize, 6)
        XCTAssertEqual(model.embedDim, 16)
        XCTAssertEqual(model.floatsPerImage, 3 * 24 * 24)
        XCTAssertEqual(model.config, c)
        let p0 = model.parameters(), t0 = model.targetParameters()
        let images = syntheticImages(batch: batch, config: c)
        for i in 1...3 {
            let s = try model.trainStep(images: images, batch: batch)
            XCTAssertEqual(s.step, Int64(i))
            XCTAssertEqual(model.step, Int64(i))
            XCTAssertTrue(s.loss.isFinite && s.loss > 0, "loss \(s.loss)")
            XCTAssertTrue(s.gradNorm.isFinite && s.gradNorm > 0)
            XCTAssertFalse(model.hasPendingGradients)
            if i == 1 {
                // warmup 2 steps: lr(1) = start + (ref - start) / 2; EMA starts at ema_start.
                XCTAssertEqual(s.lr, c.startLR + (c.lr - c.startLR) / 2, accuracy: 1e-9)
                XCTAssertEqual(s.emaMomentum, c.emaStart, accuracy: 1e-7)
                // cosine weight decay over total_steps (the official schedule)
                let wd = c.finalWeightDecay + (c.weightDecay - c.finalWeightDecay) * 0.5 * (1 + cos(Float.pi / Float(c.totalSteps)))
                XCTAssertEqual(s.weightDecay, wd, accuracy: 1e-6)
            }
        }
        let p1 = model.parameters(), t1 = model.targetParameters()
        XCTAssertEqual(Set(p1.keys), Set(p0.keys))
        for name in ["encoder.patch_embed.proj.weight", "encoder.blocks.1.mlp.fc2.weight", "predictor.mask_token",
                     "predictor.predictor_proj.bias"] {
            XCTAssertGreaterThan(maxAbsDiff(p1[name]!, p0[name]!), 0, name)
        }
        XCTAssertGreaterThan(maxAbsDiff(t1["target_encoder.blocks.0.attn.qkv.weight"]!,
                                        t0["target_encoder.blocks.0.attn.qkv.weight"]!), 0)
    }

    func testForwardBackwardThenOptimizerStepIsATrainStep() throws {
        let c = tinyConfig()
        let a = try Model(config: c), b = try Model(config: c)
        let images = syntheticImages(batch: batch, config: c)
        assertThrows(-6, "optimizer step without gradients") { () throws(IJEPAError) in try b.optimizerStep() }
        for _ in 0..<2 {
            let sa = try a.trainStep(images: images, batch: batch)
            let loss = try b.forwardBackward(images: images, batch: batch)
            XCTAssertTrue(b.hasPendingGradients)
            XCTAssertEqual(b.step, a.step - 1, "forwardBackward does not step")
            let sb = try b.optimizerStep()
            XCTAssertEqual(sa, sb)
            XCTAssertEqual(loss, sa.loss)
        }
        XCTAssertEqual(a.parameters(), b.parameters())
        XCTAssertEqual(a.targetParameters(), b.targetParameters())
        assertThrows(-6, "second optimizer step") { () throws(IJEPAError) in try b.optimizerStep() }
    }

    func testEncodeShapes() throws {
        let c = tinyConfig()
        let model = try Model(config: c)
        let images = syntheticImages(batch: 3, config: c)
        let pooled = try model.encode(images: images, batch: 3)
        let tokens = try model.encodeTokens(images: images, batch: 3)
        XCTAssertEqual(pooled.count, 3 * model.embedDim)
        XCTAssertEqual(tokens.count, 3 * model.numPatches * model.embedDim)
        XCTAssertTrue(pooled.allSatisfy(\.isFinite))
        // pooled = mean of the tokens over the patches
        let (N, D) = (model.numPatches, model.embedDim)
        var mean = [Float](repeating: 0, count: 3 * D)
        for b in 0..<3 { for n in 0..<N { for d in 0..<D { mean[b * D + d] += tokens[(b * N + n) * D + d] / Float(N) } } }
        XCTAssertLessThan(maxAbsDiff(mean, pooled), 1e-5)
        // Buffer-pointer overloads give the same; a fresh model's target encoder is the encoder.
        let viaPointer = try images.withUnsafeBufferPointer { try model.encode(images: $0, batch: 3) }
        XCTAssertEqual(viaPointer, pooled)
        let tokensViaPointer = try images.withUnsafeBufferPointer { try model.encodeTokens(images: $0, batch: 3, encoder: .context) }
        XCTAssertEqual(tokensViaPointer, tokens)
        XCTAssertEqual(try model.encode(images: images, batch: 3, encoder: .context), pooled)
        // After training the two encoders differ.
        try model.trainStep(images: images, batch: 3)
        XCTAssertNotEqual(try model.encode(images: images, batch: 3, encoder: .context),
                          try model.encode(images: images, batch: 3, encoder: .target))
    }

    func testWrongImageCountThrowsShapeErrorAndChangesNothing() throws {
        let c = tinyConfig()
        let model = try Model(config: c)
        let good = syntheticImages(batch: batch, config: c)
        let before = model.parameters()
        for images in [Array(good.dropLast()), good + [0], [], syntheticImages(batch: 1, config: c)] {
            assertThrows(-2, "trainStep \(images.count)") { () throws(IJEPAError) in try model.trainStep(images: images, batch: batch) }
            assertThrows(-2, "forwardBackward \(images.count)") { () throws(IJEPAError) in try model.forwardBackward(images: images, batch: batch) }
            assertThrows(-2, "encode \(images.count)") { () throws(IJEPAError) in try model.encode(images: images, batch: batch) }
            assertThrows(-2, "encodeTokens \(images.count)") { () throws(IJEPAError) in try model.encodeTokens(images: images, batch: batch) }
        }
        // An empty buffer pointer (nil base address) is a shape error too, not a trap.
        assertThrows(-2, "empty pointer") { () throws(IJEPAError) in
            try model.trainStep(images: UnsafeBufferPointer(start: nil, count: 0), batch: 1)
        }
        for b in [0, -1, Int.min, 1 << 40] {
            assertThrows(-1, "batch \(b)") { () throws(IJEPAError) in try model.trainStep(images: good, batch: b) }
            assertThrows(-1, "encode batch \(b)") { () throws(IJEPAError) in try model.encode(images: good, batch: b) }
            assertThrows(-1, "sampleMasks batch \(b)") { () throws(IJEPAError) in try model.sampleMasks(batch: b) }
        }
        // NaN images: numeric error, nothing updated, and no masks consumed.
        var nan = good
        nan[17] = .nan
        assertThrows(-7, "NaN images") { () throws(IJEPAError) in try model.trainStep(images: nan, batch: batch) }
        assertThrows(-7, "NaN encode") { () throws(IJEPAError) in try model.encode(images: nan, batch: batch) }
        XCTAssertEqual(model.step, 0)
        XCTAssertEqual(model.parameters(), before)
        XCTAssertFalse(model.hasPendingGradients)
        XCTAssertEqual(try model.sampleMasks(batch: batch), try Model(config: c).sampleMasks(batch: batch),
                       "failed steps must not advance the mask generator")
    }

    func testMaskSamplingAndExplicitMasks() throws {
        let c = tinyConfig()
        let model = try Model(config: c)
        let m = try model.sampleMasks(batch: 3)
        XCTAssertEqual([m.batch, m.numEnc, m.numPred], [3, 1, 4])
        XCTAssertEqual(m.enc.count, m.numEnc * m.batch * m.kEnc)
        XCTAssertEqual(m.pred.count, m.numPred * m.batch * m.kPred)
        XCTAssertGreaterThan(m.kEnc, c.minKeep)
        XCTAssertTrue((m.enc + m.pred).allSatisfy { $0 >= 0 && $0 < 36 })
        XCTAssertNoThrow(try m.validate(numPatches: 36))
        XCTAssertEqual(m.predIndices(mask: 3, image: 2).count, m.kPred)
        XCTAssertEqual(Array(m.encIndices(mask: 0, image: 1)), Array(m.enc[m.kEnc..<(2 * m.kEnc)]))
        // The generator is seeded: the same config gives the same stream.
        XCTAssertEqual(try Model(config: c).sampleMasks(batch: 3), m)
        XCTAssertNotEqual(try model.sampleMasks(batch: 3), m)

        // Sampling inside trainStep == sampling first and passing the masks.
        let images = syntheticImages(batch: batch, config: c)
        let a = try Model(config: c), b = try Model(config: c)
        for _ in 0..<2 {
            let sa = try a.trainStep(images: images, batch: batch)
            let masks = try b.sampleMasks(batch: batch)
            let sb = try b.trainStep(images: images, batch: batch, masks: masks)
            XCTAssertEqual(sa, sb)
        }
        XCTAssertEqual(a.parameters(), b.parameters())

        // Hand-made masks: the nested initializer is the flat one.
        let enc: [[[Int32]]] = [[[0, 1, 2, 6, 7, 8], [3, 4, 5, 9, 10, 11]]]
        let pred: [[[Int32]]] = (Int32(0)..<4).map { (k: Int32) -> [[Int32]] in [[20 + k, 26 + k], [30 + k, 24 + k]] }
        let own = try Masks(enc: enc, pred: pred)
        XCTAssertEqual([own.batch, own.numEnc, own.kEnc, own.numPred, own.kPred], [2, 1, 6, 4, 2])
        XCTAssertEqual(own, try Masks(batch: 2, numEnc: 1, kEnc: 6, numPred: 4, kPred: 2,
                                      enc: enc.flatMap { $0.flatMap { $0 } }, pred: pred.flatMap { $0.flatMap { $0 } }))
        XCTAssertTrue(try a.trainStep(images: images, batch: batch, masks: own).loss.isFinite)

        // Invalid masks throw at construction...
        assertThrows(-2, "count") { () throws(IJEPAError) in
            try Masks(batch: 2, numEnc: 1, kEnc: 6, numPred: 4, kPred: 2, enc: Array(own.enc.dropLast()), pred: own.pred)
        }
        assertThrows(-2, "zero dim") { () throws(IJEPAError) in
            try Masks(batch: 0, numEnc: 1, kEnc: 6, numPred: 4, kPred: 2, enc: [], pred: [])
        }
        assertThrows(-2, "overflowing dims") { () throws(IJEPAError) in
            try Masks(batch: Int.max, numEnc: 2, kEnc: 6, numPred: 4, kPred: 2, enc: [], pred: [])
        }
        assertThrows(-2, "ragged") { () throws(IJEPAError) in try Masks(enc: [[[0, 1], [2]]], pred: [[[3], [4]]]) }
        assertThrows(-2, "empty") { () throws(IJEPAError) in try Masks(enc: [], pred: [[[3]]]) }
        assertThrows(-1, "negative") { () throws(IJEPAError) in try Masks(enc: [[[0, -1]]], pred: [[[3]]]) }
        assertThrows(-1, "repeated") { () throws(IJEPAError) in try Masks(enc: [[[0, 5, 0]]], pred: [[[3]]]) }
        // ...and against the model when used.
        let outOfGrid = try Masks(enc: [[[0, 1, 2], [0, 1, 36]]], pred: (0..<4).map { _ in [[7], [8]] })
        assertThrows(-1, "index >= numPatches") { () throws(IJEPAError) in try a.trainStep(images: images, batch: batch, masks: outOfGrid) }
        assertThrows(-1, "validate(numPatches:)") { () throws(IJEPAError) in try outOfGrid.validate(numPatches: 36) }
        let threeTargets = try Masks(enc: enc, pred: Array(pred.prefix(3)))
        assertThrows(-2, "numPred != config") { () throws(IJEPAError) in try a.trainStep(images: images, batch: batch, masks: threeTargets) }
        let oneImage = try Masks(enc: [[[0, 1, 2]]], pred: (0..<4).map { _ in [[7]] })
        assertThrows(-2, "mask batch != image batch") { () throws(IJEPAError) in try a.forwardBackward(images: images, batch: batch, masks: oneImage) }
    }

    func testScheduleOverride() throws {
        let c = tinyConfig()
        let model = try Model(config: c)
        let images = syntheticImages(batch: batch, config: c)
        XCTAssertEqual(model.scheduleOverride, Model.ScheduleOverride())
        try model.setScheduleOverride(lr: 0, weightDecay: 0, emaMomentum: 1)
        XCTAssertEqual(model.scheduleOverride, Model.ScheduleOverride(lr: 0, weightDecay: 0, emaMomentum: 1))
        let p0 = model.parameters(), t0 = model.targetParameters()
        let s = try model.trainStep(images: images, batch: batch)
        XCTAssertEqual([s.lr, s.weightDecay, s.emaMomentum], [0, 0, 1])
        XCTAssertEqual(model.parameters(), p0, "lr 0, wd 0: AdamW leaves the parameters")
        XCTAssertEqual(model.targetParameters(), t0, "momentum 1: the EMA leaves the target")
        XCTAssertEqual(model.step, 1, "the schedules' counter still advances")
        for (lr, wd, ema) in [(Float(-1), nil, nil), (.nan, nil, nil), (nil, .infinity, nil), (nil, nil, Float(1.5))] as [(Float?, Float?, Float?)] {
            assertThrows(-1, "override \(String(describing: lr)) \(String(describing: wd)) \(String(describing: ema))") { () throws(IJEPAError) in
                try model.setScheduleOverride(lr: lr, weightDecay: wd, emaMomentum: ema)
            }
        }
        XCTAssertEqual(model.scheduleOverride.emaMomentum, 1, "a rejected override changes nothing")
        try model.setScheduleOverride()
        XCTAssertEqual(model.scheduleOverride, Model.ScheduleOverride())
        let s2 = try model.trainStep(images: images, batch: batch)
        XCTAssertEqual(s2.lr, c.lr, accuracy: 1e-9, "back on the schedule (end of warmup)")
    }

    func testThreadsAndDescription() throws {
        var c = tinyConfig()
        c.nThreads = 2
        let model = try Model(config: c)
        XCTAssertEqual(model.nThreads, 2)
        try model.setThreads(1)
        XCTAssertEqual(model.nThreads, 1)
        XCTAssertEqual(model.config.nThreads, 1, "config follows the thread setting")
        try model.setThreads(0)
        XCTAssertGreaterThanOrEqual(model.nThreads, 1)
        // the C ABI's and the config's rule: more than 1024 is refused, nothing changes
        assertThrows(-1, "1e6 threads") { () throws(IJEPAError) in try model.setThreads(1_000_000) }
        XCTAssertEqual(model.config.nThreads, 0)
        XCTAssertTrue(model.description.contains("24px/4"), model.description)
    }
}
