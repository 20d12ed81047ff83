import Foundation
import IJEPA
import XCTest

/// The Swift API of ragged contexts and last-k-layer features.
final class RaggedAPITests: XCTestCase {
    func testSampledRaggedMasksTrainAndKeepTheOfficialDraws() throws {
        let c = tinyConfig()
        let a = try Model(config: c), r = try Model(config: c)
        let u = try a.sampleMasks(batch: 4), g = try r.sampleMasks(batch: 4, ragged: true)
        XCTAssertFalse(u.isRagged)
        XCTAssertTrue(g.isRagged)
        XCTAssertEqual(u.pred, g.pred)
        for m in 0..<g.numEnc {
            for b in 0..<4 {
                let ctx = g.encIndices(mask: m, image: b)
                XCTAssertGreaterThanOrEqual(ctx.count, u.kEnc)
                XCTAssertEqual(Array(ctx.prefix(u.kEnc)), Array(u.encIndices(mask: m, image: b)))
            }
        }
        let images = syntheticImages(batch: 4, config: c)
        let s = try r.trainStep(images: images, batch: 4, masks: g)
        XCTAssertTrue(s.loss.isFinite)
        var rc = c
        rc.raggedContext = true
        let data = try JSONEncoder().encode(rc)
        XCTAssertEqual(try JSONDecoder().decode(Config.self, from: data), rc)
        XCTAssertTrue(try Model(config: rc).config.raggedContext)
    }

    func testRaggedInitializerValidates() throws {
        let m = try Masks(raggedEnc: [[[0, 1, 2], [3, 4]]], pred: [[[8, 9], [10, 11]]])
        XCTAssertEqual(m.kEnc, 3)
        XCTAssertEqual(m.encLengths, [3, 2])
        XCTAssertEqual(Array(m.encIndices(mask: 0, image: 1)), [3, 4])
        XCTAssertThrowsError(try Masks(raggedEnc: [[[0, 1], []]], pred: [[[8], [9]]]))
        XCTAssertThrowsError(try Masks(raggedEnc: [[[0, 0], [1]]], pred: [[[8], [9]]]))
        XCTAssertThrowsError(try Masks(raggedEnc: [[[0, 1]]], pred: [[[8], [9]]]))   // 1 image vs 2
    }

    func testEncodeLayers() throws {
        let c = tinyConfig()
        let model = try Model(config: c)
        let images = syntheticImages(batch: 2, config: c)
        let pooled = try model.encode(images: images, batch: 2)
        XCTAssertEqual(try model.encodeLayers(images: images, batch: 2, lastK: 1), pooled)
        let both = try model.encodeLayers(images: images, batch: 2, lastK: c.depth)
        XCTAssertEqual(both.count, 2 * c.depth * c.embedDim)
        XCTAssertEqual(Array(both[(c.depth - 1) * c.embedDim ..< c.depth * c.embedDim]), Array(pooled[0..<c.embedDim]))
        XCTAssertThrowsError(try model.encodeLayers(images: images, batch: 2, lastK: 0))
        XCTAssertThrowsError(try model.encodeLayers(images: images, batch: 2, lastK: c.depth + 1))
    }
}
