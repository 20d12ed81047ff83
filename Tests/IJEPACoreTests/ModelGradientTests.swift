import XCTest
@testable import IJEPACore

/// The whole model's analytic gradient (every parameter tensor) against central finite
/// differences of the loss, on a tiny config with fixed masks.
final class ModelGradientTests: XCTestCase {
    static func tinyConfig(nenc: Int = 1, npred: Int = 2) -> ModelConfig {
        var c = ModelConfig()
        c.imageSize = 8; c.patchSize = 2; c.inChans = 2
        c.embedDim = 8; c.depth = 2; c.numHeads = 2; c.mlpRatio = 2
        c.predEmbedDim = 8; c.predDepth = 1; c.predNumHeads = 2
        c.numEncMasks = nenc; c.numPredMasks = npred; c.minKeep = 0
        c.nThreads = 2
        return c
    }

    static func fixedMasks(batch B: Int, nenc: Int, npred: Int) -> MaskSet {
        // 4x4 grid; context rows of 5 patches, target rows of 3 patches (disjoint per image).
        var enc: [Int32] = [], pred: [Int32] = []
        let ctx: [[Int32]] = [[0, 1, 2, 4, 5], [0, 4, 8, 9, 12]]
        let tgt: [[Int32]] = [[10, 11, 15], [6, 7, 3], [13, 14, 15]]
        for e in 0..<nenc { for b in 0..<B { enc += ctx[(e + b) % ctx.count] } }
        for p in 0..<npred { for b in 0..<B { pred += tgt[(p + b) % tgt.count] } }
        return MaskSet(batch: B, numEnc: nenc, kEnc: 5, numPred: npred, kPred: 3, enc: enc, pred: pred)
    }

    func checkGradients(nenc: Int, npred: Int) throws {
        let c = Self.tinyConfig(nenc: nenc, npred: npred)
        let model = try Model(config: c)
        var rng = RNG(seed: 11)
        // larger weights than the 0.02 init so every path carries signal
        for i in 0..<model.layout.totalCount where model.params.ptr[i] != 1 && model.params.ptr[i] != 0 {
            model.params.ptr[i] = Float(rng.normal() * 0.3)
        }
        // target encoder differs from the context encoder (as after EMA steps)
        for i in 0..<model.layout.encoderCount { model.target.ptr[i] = model.params.ptr[i] + Float(rng.normal() * 0.1) }
        let B = 2
        let images = randomArray(B * c.inChans * c.imageSize * c.imageSize, &rng)
        let masks = Self.fixedMasks(batch: B, nenc: nenc, npred: npred)
        func loss() throws -> Double {
            try images.withUnsafeBufferPointer { _ = try model.forwardBackward(images: $0.baseAddress!, batch: B, masks: masks) }
            return model.lastLossDouble
        }
        _ = try loss()
        let analytic = Array(UnsafeBufferPointer(start: model.grads.ptr, count: model.layout.totalCount))
        for t in model.layout.tensors {
            // up to 6 entries of every tensor
            var idx: [Int] = []
            for k in 0..<min(6, t.count) { idx.append(t.offset + (k * 7919) % t.count) }
            var a: [Float] = [], fd: [Float] = []
            for i in idx {
                let old = model.params.ptr[i]
                let h: Float = 1e-2
                model.params.ptr[i] = old + h; let lp = try loss()
                model.params.ptr[i] = old - h; let lm = try loss()
                model.params.ptr[i] = old
                a.append(analytic[i]); fd.append(Float((lp - lm) / Double(2 * h)))
            }
            let scale = max(fd.map(abs).max()!, a.map(abs).max()!)
            if scale < 1e-7 { continue }
            for k in 0..<a.count {
                XCTAssertLessThan(abs(a[k] - fd[k]), 2e-2 * scale + 1e-6,
                                  "\(t.name)[\(idx[k] - t.offset)]: analytic \(a[k]) vs finite difference \(fd[k])")
            }
        }
    }

    func testWholeModelGradientAgainstFiniteDifferences() throws {
        try checkGradients(nenc: 1, npred: 2)
    }

    func testWholeModelGradientTwoContextsThreeTargets() throws {
        try checkGradients(nenc: 2, npred: 3)
    }
}
