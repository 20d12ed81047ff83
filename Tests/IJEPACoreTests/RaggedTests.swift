import XCTest
@testable import IJEPACore

/// Ragged contexts (each image keeps its own context length) and last-k-layer features.
/// The central property: with ragged masks every image's outputs and gradient contributions are
/// exactly those of the same image run alone (a batch of one with the same masks, which the
/// PyTorch fixtures cover), so the batch loss is the mean of the single losses and the batch
/// gradient the mean of the single gradients.
final class RaggedTests: XCTestCase {
    static func config(nenc: Int, npred: Int, threads: Int = 2) -> ModelConfig {
        var c = ModelGradientTests.tinyConfig(nenc: nenc, npred: npred)
        c.nThreads = threads
        return c
    }

    /// Contexts of lengths 3, 5, 7, 4, ... on the 4x4 grid (disjoint from that image's targets).
    static func raggedMasks(batch B: Int, nenc: Int, npred: Int) -> MaskSet {
        let ctx: [[Int32]] = [[0, 1, 2], [0, 4, 8, 9, 12], [0, 1, 2, 4, 5, 8, 9], [1, 5, 9, 13]]
        let tgt: [[Int32]] = [[10, 11, 15], [6, 7, 3], [14, 15, 11]]
        let k = 7
        var enc: [Int32] = [], len: [Int32] = [], pred: [Int32] = []
        for e in 0..<nenc {
            for b in 0..<B {
                let c = ctx[(e * 3 + b) % ctx.count]
                enc += c + [Int32](repeating: 99, count: k - c.count)   // padding is ignored
                len.append(Int32(c.count))
            }
        }
        for p in 0..<npred { for b in 0..<B { pred += tgt[(p + b) % tgt.count] } }
        return MaskSet(batch: B, numEnc: nenc, kEnc: k, numPred: npred, kPred: 3, enc: enc, pred: pred, encLen: len)
    }

    /// Image b's masks as a batch of one (uniform: one context per nenc, its own length).
    static func single(_ m: MaskSet, image b: Int) -> MaskSet {
        var enc: [Int32] = [], len: [Int32] = [], pred: [Int32] = []
        for e in 0..<m.numEnc {
            let r = e * m.batch + b
            enc += m.enc[(r * m.kEnc)..<(r * m.kEnc + m.kEnc)]
            len.append(Int32(m.contextLength(r)))
        }
        for p in 0..<m.numPred { pred += m.pred[((p * m.batch + b) * m.kPred)..<((p * m.batch + b + 1) * m.kPred)] }
        return MaskSet(batch: 1, numEnc: m.numEnc, kEnc: m.kEnc, numPred: m.numPred, kPred: m.kPred,
                       enc: enc, pred: pred, encLen: len)
    }

    func model(_ c: ModelConfig) throws -> Model {
        let m = try Model(config: c)
        var rng = RNG(seed: 5)
        for i in 0..<m.layout.totalCount where m.params.ptr[i] != 1 && m.params.ptr[i] != 0 {
            m.params.ptr[i] = Float(rng.normal() * 0.3)
        }
        for i in 0..<m.layout.encoderCount { m.target.ptr[i] = m.params.ptr[i] + Float(rng.normal() * 0.1) }
        return m
    }

    func testEachImageEqualsItselfAlone() throws {
        for (nenc, npred, threads) in [(1, 2, 2), (2, 3, 1), (2, 2, 2)] {
            let c = Self.config(nenc: nenc, npred: npred, threads: threads)
            let m = try model(c)
            let B = 3, D = c.embedDim, per = c.inChans * c.imageSize * c.imageSize
            var rng = RNG(seed: 9)
            let images = randomArray(B * per, &rng)
            let masks = Self.raggedMasks(batch: B, nenc: nenc, npred: npred)
            let loss = try images.withUnsafeBufferPointer { try m.forwardBackward(images: $0.baseAddress!, batch: B, masks: masks) }
            let lossD = m.lastLossDouble
            let grads = Array(UnsafeBufferPointer(start: m.grads.ptr, count: m.layout.totalCount))
            let predOut = m.lastTensor("pred_out")!, ctxOut = m.lastTensor("ctx_out")!
            XCTAssertEqual(ctxOut.count, masks.encLen!.reduce(0) { $0 + Int($1) } * D)
            XCTAssert(loss.isFinite)

            var meanLoss = 0.0
            var meanGrads = [Float](repeating: 0, count: grads.count)
            var ctxRow = [Int](repeating: 0, count: nenc * B + 1)   // start row of context r in the batch
            for r in 0..<(nenc * B) { ctxRow[r + 1] = ctxRow[r] + masks.contextLength(r) }
            for b in 0..<B {
                let one = Self.single(masks, image: b)
                let img = Array(images[(b * per)..<((b + 1) * per)])
                _ = try img.withUnsafeBufferPointer { try m.forwardBackward(images: $0.baseAddress!, batch: 1, masks: one) }
                meanLoss += m.lastLossDouble / Double(B)
                for i in 0..<grads.count { meanGrads[i] += m.grads.ptr[i] / Float(B) }
                // forward: the predictions of image b's sequences and its context outputs
                let po = m.lastTensor("pred_out")!, co = m.lastTensor("ctx_out")!
                var oneRow = 0
                for e in 0..<nenc {
                    let r = e * B + b, n = masks.contextLength(r)
                    assertClose(Array(co[(oneRow * D)..<((oneRow + n) * D)]),
                                Array(ctxOut[(ctxRow[r] * D)..<((ctxRow[r] + n) * D)]), atol: 1e-6, rtol: 1e-5,
                                "ctx_out image \(b) context \(e) (nenc \(nenc))")
                    oneRow += n
                    for p in 0..<npred {
                        let rows = masks.kPred * D
                        let jb = p * nenc * B + e * B + b, j1 = p * nenc + e
                        assertClose(Array(po[(j1 * rows)..<((j1 + 1) * rows)]), Array(predOut[(jb * rows)..<((jb + 1) * rows)]),
                                    atol: 1e-6, rtol: 1e-5, "pred_out image \(b) block \(p) context \(e)")
                    }
                }
            }
            XCTAssertEqual(lossD, meanLoss, accuracy: 1e-6 * abs(meanLoss) + 1e-9, "loss (nenc \(nenc), npred \(npred))")
            let scale = meanGrads.map(abs).max()!
            assertClose(grads, meanGrads, atol: 1e-6 * scale, rtol: 1e-4, "gradients = mean of single-image gradients (nenc \(nenc))")
        }
    }

    /// Uniform masks written as ragged ones (every length = kEnc, padding absent) give bit-identical
    /// results: the ragged path is the general one, not a second implementation.
    func testUniformAsRaggedIsIdentical() throws {
        let c = Self.config(nenc: 2, npred: 2)
        let m = try model(c)
        var rng = RNG(seed: 3)
        let B = 2, images = randomArray(B * c.inChans * c.imageSize * c.imageSize, &rng)
        var u = ModelGradientTests.fixedMasks(batch: B, nenc: 2, npred: 2)
        func run(_ k: MaskSet) throws -> (Float, [Float]) {
            let l = try images.withUnsafeBufferPointer { try m.forwardBackward(images: $0.baseAddress!, batch: B, masks: k) }
            return (l, Array(UnsafeBufferPointer(start: m.grads.ptr, count: m.layout.totalCount)))
        }
        let (l0, g0) = try run(u)
        u.encLen = [Int32](repeating: Int32(u.kEnc), count: u.numEnc * B)
        let (l1, g1) = try run(u)
        XCTAssertEqual(l0, l1)
        XCTAssertEqual(g0, g1)
    }

    /// Central finite differences of the loss with ragged masks, a few entries of every tensor.
    func testFiniteDifferenceGradients() throws {
        let c = Self.config(nenc: 2, npred: 2)
        let m = try model(c)
        var rng = RNG(seed: 21)
        let B = 3, images = randomArray(B * c.inChans * c.imageSize * c.imageSize, &rng)
        let masks = Self.raggedMasks(batch: B, nenc: 2, npred: 2)
        func loss() throws -> Double {
            try images.withUnsafeBufferPointer { _ = try m.forwardBackward(images: $0.baseAddress!, batch: B, masks: masks) }
            return m.lastLossDouble
        }
        _ = try loss()
        let analytic = Array(UnsafeBufferPointer(start: m.grads.ptr, count: m.layout.totalCount))
        for t in m.layout.tensors {
            var a: [Float] = [], fd: [Float] = []
            for k in 0..<min(4, t.count) {
                let i = t.offset + (k * 7919) % t.count
                let old = m.params.ptr[i], h: Float = 1e-2
                m.params.ptr[i] = old + h; let lp = try loss()
                m.params.ptr[i] = old - h; let lm = try loss()
                m.params.ptr[i] = old
                a.append(analytic[i]); fd.append(Float((lp - lm) / Double(2 * h)))
            }
            let scale = max(fd.map(abs).max()!, a.map(abs).max()!)
            if scale < 1e-7 { continue }
            assertClose(a, fd, atol: 2e-2 * scale, rtol: 2e-2, "d loss / d \(t.name)")
        }
    }

    func testRaggedSamplerKeepsTheOfficialDraws() throws {
        var c = ModelConfig.preset("fmnist_tiny")!
        c.seed = 4
        var official = try MaskCollator(config: c), ragged = official
        for _ in 0..<5 {
            let u = try official.sample(batch: 16), r = try ragged.sample(batch: 16, ragged: true)
            XCTAssertNil(u.encLen)
            XCTAssertEqual(u.pred, r.pred, "same target blocks")
            XCTAssertEqual(u.kPred, r.kPred)
            let len = try XCTUnwrap(r.encLen)
            XCTAssertEqual(Int(len.min()!), u.kEnc, "the official cut is the shortest context")
            XCTAssertEqual(Int(len.max()!), r.kEnc)
            for row in 0..<(u.numEnc * 16) {
                let l = Int(len[row])
                XCTAssertEqual(Array(r.enc[(row * r.kEnc)..<(row * r.kEnc + u.kEnc)]),
                               Array(u.enc[(row * u.kEnc)..<((row + 1) * u.kEnc)]), "official context = ragged prefix")
                XCTAssert(r.enc[(row * r.kEnc + l)..<((row + 1) * r.kEnc)].allSatisfy { $0 == -1 }, "padding is -1")
                let ctx = Set(r.enc[(row * r.kEnc)..<(row * r.kEnc + l)])
                XCTAssertEqual(ctx.count, l)
                for p in 0..<r.numPred {   // contexts stay disjoint from their image's targets
                    let b = row % 16
                    XCTAssert(ctx.isDisjoint(with: r.pred[((p * 16 + b) * r.kPred)..<((p * 16 + b + 1) * r.kPred)]))
                }
            }
            try r.validate(numPatches: c.numPatches)
        }
        XCTAssertEqual(official.counter, ragged.counter)
        XCTAssertEqual(official.locationRNG, ragged.locationRNG)
    }

    func testRaggedValidation() throws {
        var m = Self.raggedMasks(batch: 2, nenc: 1, npred: 1)
        try m.validate(numPatches: 16)
        m.encLen![1] = 0
        XCTAssertThrowsError(try m.validate(numPatches: 16)) { XCTAssertEqual(($0 as? IJEPAError)?.status, IJEPAError.shape("").status) }
        m.encLen![1] = 8   // > kEnc 7
        XCTAssertThrowsError(try m.validate(numPatches: 16))
        m.encLen = [3]     // wrong count
        XCTAssertThrowsError(try m.validate(numPatches: 16))
        m = Self.raggedMasks(batch: 2, nenc: 1, npred: 1)
        m.enc[1] = m.enc[0]   // repeat inside the used part
        XCTAssertThrowsError(try m.validate(numPatches: 16))
        m = Self.raggedMasks(batch: 2, nenc: 1, npred: 1)
        m.enc[6] = 1000       // beyond image 0's length 3: padding, ignored
        try m.validate(numPatches: 16)
    }

    /// A ragged training step through the model's own sampler (config.raggedContext) lowers
    /// nothing to NaN and records the longer contexts.
    func testRaggedContextConfigSamplesRagged() throws {
        var c = ModelConfig.preset("tiny32")!
        c.depth = 2; c.predDepth = 1; c.nThreads = 2; c.raggedContext = true; c.totalSteps = 10; c.warmupSteps = 2
        let m = try Model(config: c)
        var rng = RNG(seed: 1)
        let B = 4, images = randomArray(B * c.inChans * c.imageSize * c.imageSize, &rng)
        var probe = m.collator
        let expected = try probe.sample(batch: B, ragged: true)
        let s = try images.withUnsafeBufferPointer { try m.trainStep(images: $0.baseAddress!, batch: B) }
        XCTAssert(s.loss.isFinite)
        XCTAssertEqual(m.lastCtxRows, expected.encLen!.reduce(0) { $0 + Int($1) })
        XCTAssertEqual(m.collator.counter, probe.counter)
    }

    /// encodeLayers: lastK 1 is encode's pooled output bit for bit; block l's features equal the
    /// pooled output of a shallower model holding the first l+1 blocks and the same final norm.
    func testEncodeLayers() throws {
        var c = Self.config(nenc: 1, npred: 1)
        c.depth = 3
        let m = try model(c)
        var rng = RNG(seed: 8)
        let B = 3, D = c.embedDim, images = randomArray(B * c.inChans * c.imageSize * c.imageSize, &rng)
        var pooled = [Float](repeating: 0, count: B * D), layers = [Float](repeating: 0, count: B * 3 * D)
        try images.withUnsafeBufferPointer { img in
            try pooled.withUnsafeMutableBufferPointer {
                try m.encode(images: img.baseAddress!, batch: B, encoder: .target, tokens: nil, pooled: $0.baseAddress!)
            }
            var one = [Float](repeating: 0, count: B * D)
            try one.withUnsafeMutableBufferPointer {
                try m.encodeLayers(images: img.baseAddress!, batch: B, encoder: .target, lastK: 1, pooled: $0.baseAddress!)
            }
            XCTAssertEqual(one, pooled, "lastK 1 = encode")
            try layers.withUnsafeMutableBufferPointer {
                try m.encodeLayers(images: img.baseAddress!, batch: B, encoder: .target, lastK: 3, pooled: $0.baseAddress!)
            }
        }
        for b in 0..<B { XCTAssertEqual(Array(layers[((b * 3 + 2) * D)..<((b * 3 + 3) * D)]), Array(pooled[(b * D)..<((b + 1) * D)])) }
        for depth in 1...2 {
            var cs = c
            cs.depth = depth
            let shallow = try Model(config: cs)
            for t in shallow.layout.targetTensors {
                let src = try XCTUnwrap(m.layout.targetTensors.first { $0.name == t.name })
                (shallow.target.ptr + t.offset).update(from: m.target.ptr + src.offset, count: t.count)
            }
            var ref = [Float](repeating: 0, count: B * D)
            try images.withUnsafeBufferPointer { img in
                try ref.withUnsafeMutableBufferPointer {
                    try shallow.encode(images: img.baseAddress!, batch: B, encoder: .target, tokens: nil, pooled: $0.baseAddress!)
                }
            }
            let l = depth - 1
            for b in 0..<B {
                assertClose(Array(layers[((b * 3 + l) * D)..<((b * 3 + l + 1) * D)]), Array(ref[(b * D)..<((b + 1) * D)]),
                            atol: 1e-6, rtol: 1e-5, "block \(l) features of image \(b)")
            }
        }
        XCTAssertThrowsError(try images.withUnsafeBufferPointer { img in
            try layers.withUnsafeMutableBufferPointer {
                try m.encodeLayers(images: img.baseAddress!, batch: B, encoder: .target, lastK: 4, pooled: $0.baseAddress!)
            }
        })
    }
}
