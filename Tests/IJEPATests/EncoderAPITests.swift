import IJEPA
import XCTest

/// The Swift API of pretrained encoders: a copy of a model, a checkpoint, preprocessing and
/// errors (numerical parity with transformers and timm is in IJEPACoreTests.EncoderTests).
final class EncoderAPITests: XCTestCase {
    func testCopiesAndCheckpointsEncodeAsTheModel() throws {
        let dir = try temporaryDirectory(self)
        let c = tinyConfig()
        let model = try Model(config: c)
        let images = syntheticImages(batch: 2, config: c)
        try model.trainStep(images: images, batch: 2)
        let path = dir + "/w.safetensors"
        try model.save(to: path)
        for e in Model.Encoder.allCases {
            let copy = try Encoder(copying: model, encoder: e)
            let loaded = try Encoder.load(path, encoder: e, nThreads: 1)
            XCTAssertEqual(copy.source, .model)
            XCTAssertEqual(loaded.source, .checkpoint)
            XCTAssertEqual(loaded.trainedAs, e)
            XCTAssertEqual([loaded.imageSize, loaded.patchSize, loaded.embedDim, loaded.depth, loaded.numHeads],
                           [24, 4, 16, 2, 2])
            // an encoder runs packed-weight products where the model runs BLAS's: equal to rounding
            let want = try model.encode(images: images, batch: 2, encoder: e)
            let pooled = try loaded.encode(images: images, batch: 2)
            XCTAssertEqual(try copy.encode(images: images, batch: 2), pooled)
            assertNear(pooled, want, "pooled, \(e)")
            assertNear(try loaded.encodeTokens(images: images, batch: 2),
                       try model.encodeTokens(images: images, batch: 2, encoder: e), "tokens, \(e)")
            let layers = try loaded.encodeLayers(images: images, batch: 2, lastK: 2)
            XCTAssertEqual(Array(layers[16..<32]), Array(pooled[0..<16]), "the last block's feature is the pooled one")
            // saved as an encoder file and loaded back: the same encoder, the same features
            try loaded.save(to: dir + "/enc.safetensors")
            let back = try Encoder.load(dir + "/enc.safetensors", nThreads: 1)
            XCTAssertEqual(back.source, .checkpoint)
            XCTAssertEqual(back.trainedAs, e)
            XCTAssertEqual(back.description, loaded.description)
            XCTAssertEqual(try back.encode(images: images, batch: 2), pooled)
        }
        XCTAssertThrowsError(try Encoder(copying: model).save(to: dir + "/no/such/dir/e.safetensors")) { e in
            XCTAssertEqual((e as? IJEPAError)?.status, -4)
        }
        // another size: 7x8 patches, a resized position table
        let enc = try Encoder.load(path)
        let big = [Float](repeating: 0.1, count: 3 * 28 * 32)
        XCTAssertEqual(try enc.numTokens(height: 28, width: 32), 56)
        XCTAssertEqual(try enc.encodeTokens(images: big, batch: 1, height: 28, width: 32).count, 56 * 16)
    }

    /// max |a − b| ≤ 1e-5 · max |b|
    func assertNear(_ a: [Float], _ b: [Float], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, file: file, line: line)
        let scale = b.map(abs).max() ?? 0, diff = zip(a, b).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(diff, 1e-5 * scale, what, file: file, line: line)
    }

    func testPreprocessAndErrors() throws {
        let p = ImagePreprocess(crop: 224)
        XCTAssertEqual(p.resize, 256)
        let rgb = [UInt8](repeating: 128, count: 300 * 260 * 3)
        let out = try p(rgb: rgb, height: 300, width: 260)
        XCTAssertEqual(out.count, 3 * 224 * 224)
        XCTAssertEqual(out[0], (128.0 / 255 - 0.485) / 0.229, accuracy: 1e-5)
        assertThrows(-2, "wrong byte count") { () throws(IJEPAError) in try p(rgb: rgb, height: 300, width: 261) }
        var noResize = ImagePreprocess(crop: 224)
        noResize.resize = 0
        assertThrows(-1, "crop larger than the image") { () throws(IJEPAError) in
            try noResize(rgb: [UInt8](repeating: 0, count: 30), height: 5, width: 2)
        }
        assertThrows(-4, "missing file") { () throws(IJEPAError) in try Encoder.load("/nonexistent/w.safetensors") }
        let enc = try Encoder(copying: try Model(config: tinyConfig()))
        assertThrows(-2, "image count") { () throws(IJEPAError) in try enc.encode(images: [0, 1], batch: 1) }
        assertThrows(-2, "smaller than a patch") { () throws(IJEPAError) in
            try enc.encode(images: [Float](repeating: 0, count: 9), batch: 1, height: 1, width: 3)
        }
        assertThrows(-1, "last k") { () throws(IJEPAError) in
            try enc.encodeLayers(images: [Float](repeating: 0, count: 3 * 576), batch: 1, lastK: 3)
        }
    }
}
