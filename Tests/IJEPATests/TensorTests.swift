import IJEPA
import XCTest

final class TensorTests: XCTestCase {
    func testParameterViewsMatchTheCopiesAndTheLayout() throws {
        let c = tinyConfig()
        let model = try Model(config: c)
        let infos = model.tensorInfos(.parameters)
        let copies = model.parameters()
        XCTAssertEqual(Set(infos.map(\.name)), Set(copies.keys))
        XCTAssertEqual(infos.count, copies.count, "names are unique")
        XCTAssertEqual(infos.first?.name, "encoder.patch_embed.proj.weight")
        XCTAssertEqual(infos.first?.shape, [16, 3, 4, 4])
        XCTAssertEqual(infos.last?.name, "predictor.predictor_proj.bias")
        // contiguous, in order, covering the buffer
        var offset = 0
        for t in infos {
            XCTAssertEqual(t.offset, offset, t.name)
            XCTAssertEqual(t.count, t.shape.reduce(1, *), t.name)
            XCTAssertEqual(t.weightDecay, !t.name.hasSuffix("bias") && t.shape.count > 1, t.name)
            offset += t.count
        }
        XCTAssertEqual(offset, model.parameterCount)
        for b in [Model.Buffer.parameters, .gradients, .adamM, .adamV] {
            XCTAssertEqual(model.floatCount(b), model.parameterCount)
            XCTAssertEqual(model.tensorInfos(b), infos)
        }
        model.withParameters { view, layout in
            XCTAssertEqual(view.count, model.parameterCount)
            XCTAssertEqual(layout, infos)
            for t in layout { XCTAssertEqual(Array(view[t.range]), copies[t.name]!, t.name) }
        }
        // The target buffer: the encoder part, renamed, equal to the encoder at creation.
        let targets = model.tensorInfos(.target)
        XCTAssertEqual(model.floatCount(.target), model.targetParameterCount)
        XCTAssertEqual(targets.count, infos.filter { $0.name.hasPrefix("encoder.") }.count)
        for t in targets {
            XCTAssertTrue(t.name.hasPrefix("target_encoder."), t.name)
            let src = "encoder." + t.name.dropFirst("target_encoder.".count)
            XCTAssertEqual(model.tensor(named: t.name, in: .target), copies[src], t.name)
        }
        XCTAssertEqual(Set(model.targetParameters().keys), Set(targets.map(\.name)))
        XCTAssertNil(model.tensor(named: "encoder.nope"))
        XCTAssertEqual(model.tensor(named: "encoder.norm.weight"), [Float](repeating: 1, count: 16))
    }

    func testWritesThroughViewsReachTheEngine() throws {
        let c = tinyConfig()
        let model = try Model(config: c)
        let images = syntheticImages(batch: 1, config: c)
        let before = try model.encode(images: images, batch: 1)
        // Zero-copy write into the target encoder changes target features only.
        model.withTargetParameters { view, layout in
            let bias = layout.first { $0.name == "target_encoder.norm.bias" }!
            for i in bias.range { view[i] = 0.5 }
        }
        let after = try model.encode(images: images, batch: 1)
        XCTAssertLessThan(maxAbsDiff(after, before.map { $0 + 0.5 }), 1e-5)
        XCTAssertEqual(try model.encode(images: images, batch: 1, encoder: .context), before)
        // setTensor is the copying equivalent.
        try model.setTensor(named: "encoder.norm.bias", to: [Float](repeating: -1, count: 16))
        XCTAssertEqual(model.parameters()["encoder.norm.bias"], [Float](repeating: -1, count: 16))
        let ctx = try model.encode(images: images, batch: 1, encoder: .context)
        XCTAssertLessThan(maxAbsDiff(ctx, before.map { $0 - 1 }), 1e-5)
        assertThrows(-1, "unknown name") { () throws(IJEPAError) in try model.setTensor(named: "encoder.nope", to: [1]) }
        assertThrows(-1, "wrong buffer") { () throws(IJEPAError) in try model.setTensor(named: "predictor.mask_token", in: .target, to: [1]) }
        assertThrows(-2, "wrong count") { () throws(IJEPAError) in try model.setTensor(named: "encoder.norm.bias", to: [1, 2]) }
        assertThrows(-7, "NaN") { () throws(IJEPAError) in
            try model.setTensor(named: "encoder.norm.bias", to: [Float](repeating: .nan, count: 16))
        }
        XCTAssertEqual(model.parameters()["encoder.norm.bias"], [Float](repeating: -1, count: 16), "rejected writes change nothing")
        // Errors thrown by the body pass through (typed).
        struct Stop: Error {}
        XCTAssertThrowsError(try model.withGradients { _, _ throws(Stop) in throw Stop() }) { XCTAssertTrue($0 is Stop) }
    }

    /// Data parallelism through the gradient view: two replicas each take half the batch,
    /// average their gradients in place, step, and stay identical.
    func testGradientAllReduceKeepsReplicasInSync() throws {
        let c = tinyConfig()
        let r0 = try Model(config: c), r1 = try Model(config: c)
        let images = syntheticImages(batch: 4, config: c, seed: 3)
        let half = 2 * c.floatsPerImage
        for _ in 0..<2 {
            // each replica's own masks for its shard (the generators differ on purpose)
            let m0 = try r0.sampleMasks(batch: 2)
            _ = try r1.sampleMasks(batch: 2)
            let m1 = try r1.sampleMasks(batch: 2)
            try r0.forwardBackward(images: Array(images[..<half]), batch: 2, masks: m0)
            try r1.forwardBackward(images: Array(images[half...]), batch: 2, masks: m1)
            let g0 = r0.gradients(), g1 = r1.gradients()
            XCTAssertNotEqual(g0, g1)
            r0.withGradients { a, layout in
                r1.withGradients { b, _ in
                    XCTAssertEqual(Array(a[layout[0].range]), g0[layout[0].name])
                    for i in a.indices { let m = (a[i] + b[i]) / 2; a[i] = m; b[i] = m }
                }
            }
            XCTAssertEqual(r0.gradients(), r1.gradients())
            XCTAssertEqual(try r0.optimizerStep().gradNorm, try r1.optimizerStep().gradNorm)
            XCTAssertEqual(r0.parameters(), r1.parameters())
            XCTAssertEqual(r0.targetParameters(), r1.targetParameters())
        }
    }
}
