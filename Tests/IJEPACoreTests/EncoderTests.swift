import CIJEPAKernels
import Foundation
import XCTest
@testable import IJEPACore

/// The inference-only encoder against transformers' IJepaModel, timm's VisionTransformer and
/// the official-name layout (Tests/Fixtures/encoders, tools/make_encoder_fixtures.py), against
/// the training model it can be copied from, and on bad files.
final class EncoderTests: XCTestCase {
    let dir = fixturesDirectory.appendingPathComponent("encoders")
    lazy var expected = try! SafetensorsFile(path: dir.appendingPathComponent("expected.safetensors").path)

    func load(_ name: String, which: EncoderKind = .target, heads: Int = 0,
              pos: PosInterpolation = .auto) throws -> ViTEncoder {
        var o = EncoderLoadOptions()
        o.which = which; o.numHeads = heads; o.nThreads = 2; o.posInterpolation = pos
        return try ViTEncoder.load(from: dir.appendingPathComponent(name).path, o)
    }

    /// Tokens, pooled and last-2 features of `enc` for the fixture case `key` ("hf.up", ...).
    func check(_ enc: ViTEncoder, _ key: String, tokensKey: String = "tokens", pooledKey: String = "pooled",
               layers: Bool = true, file: StaticString = #filePath, line: UInt = #line) throws {
        let e = try expected.entry(key + ".images")
        let (B, H, W) = (e.shape[0], e.shape[2], e.shape[3])
        let images = try expected.floats(key + ".images")
        let n = try enc.numTokens(height: H, width: W), D = enc.shape.embedDim
        var tokens = [Float](repeating: .nan, count: B * n * D), pooled = [Float](repeating: .nan, count: B * D)
        try enc.encode(images: images, batch: B, height: H, width: W, tokens: &tokens, pooled: &pooled)
        assertCloseToScale(tokens, try expected.floats("\(key).\(tokensKey)"), tol: 1e-5, "\(key) tokens", file: file, line: line)
        assertCloseToScale(pooled, try expected.floats("\(key).\(pooledKey)"), tol: 1e-5, "\(key) pooled", file: file, line: line)
        if layers {
            var l = [Float](repeating: .nan, count: B * 2 * D)
            try enc.encodeLayers(images: images, batch: B, height: H, width: W, lastK: 2, pooled: &l)
            assertCloseToScale(l, try expected.floats("\(key).layers"), tol: 1e-5, "\(key) last 2", file: file, line: line)
        }
    }

    func testHuggingFaceBothNamingsMatchTransformers() throws {
        for name in ["hf_v5", "hf_v4", "hf_v5/model.safetensors"] {
            let enc = try load(name)
            XCTAssertEqual(enc.source, .huggingFace)
            XCTAssertNil(enc.which)
            XCTAssertEqual(enc.shape, EncoderShape(patchSize: 4, inChans: 3, embedDim: 32, depth: 3, numHeads: 2,
                                                   mlpHidden: 80, lnEps: 1e-5))
            XCTAssertEqual(enc.grid, 6)
            XCTAssertEqual(enc.posInterpolation, .bicubic)
            for z in ["native", "up", "down"] { try check(enc, "hf.\(z)") }
        }
    }

    func testTimmMatchesTimmIncludingItsAntialiasedPositionResize() throws {
        let enc = try load("timm")
        XCTAssertEqual(enc.source, .timm)
        XCTAssertEqual(enc.shape.numHeads, 4)
        XCTAssertEqual(enc.posInterpolation, .bicubicAntialiased)
        for z in ["native", "up", "down"] { try check(enc, "timm.\(z)") }
        // the same weights with the non-antialiased table (transformers' rule)
        try check(try load("timm", pos: .bicubic), "timm.up", tokensKey: "tokens_bicubic", pooledKey: "pooled_bicubic",
                  layers: false)
    }

    func testOfficialNamesBothEncoders() throws {
        for (which, key) in [(EncoderKind.target, "official_target"), (.context, "official_context")] {
            let enc = try load("official.safetensors", which: which, heads: 4)
            XCTAssertEqual(enc.source, .official)
            XCTAssertEqual(enc.which, which)
            for z in ["native", "up", "down"] { try check(enc, "\(key).\(z)") }
        }
        // the heads are the one size the tensors cannot tell
        XCTAssertThrowsError(try load("official.safetensors")) { e in
            XCTAssert("\(e)".contains("attention heads"), "\(e)")
        }
    }

    func testPositionTableResizeKernels() throws {
        for (name, key, filter) in [("hf_v5", "hf.down.pos_table", ResampleFilter.bicubic),
                                    ("timm", "timm.down.pos_table_aa", .bicubicAntialiased)] {
            let enc = try load(name)
            let want = try expected.floats(key)
            let down = name == "timm" ? (3, 2) : (5, 4)
            var got = [Float](repeating: .nan, count: down.0 * down.1 * enc.shape.embedDim)
            resampleGrid(enc.pos.ptr, inH: enc.grid, inW: enc.grid, channels: enc.shape.embedDim, to: &got,
                         outH: down.0, outW: down.1, filter)
            assertCloseToScale(got, want, tol: 1e-6, key)
        }
    }

    func testPreprocessMatchesTorchvisionOnPIL() throws {
        let f = try SafetensorsFile(path: dir.appendingPathComponent("preprocess.safetensors").path)
        for c in 0..<5 {
            let e = try f.entry("case\(c).rgb")
            let rgb = try f.ints("case\(c).rgb").map { UInt8($0) }
            let s = try f.ints("case\(c).settings")
            var p = Preprocess(crop: Int(s[1]))
            p.resize = Int(s[0])
            var out = [Float](repeating: .nan, count: 3 * p.crop * p.crop)
            try p.apply(rgb, height: e.shape[0], width: e.shape[1], into: &out)
            // float64 twin of PIL's filter: tight; PIL itself rounds to uint8 between its passes
            assertClose(out, try f.floats("case\(c).float"), atol: 1e-5, "case \(c) vs the float pipeline")
            assertClose(out, try f.floats("case\(c).pil"), atol: 1.0 / 255 / 0.224 + 1e-5, "case \(c) vs PIL")
        }
    }

    func testCopyOfATrainingModelEncodesAsTheModel() throws {
        var c = ModelGradientTests.tinyConfig()
        c.imageSize = 12; c.patchSize = 3; c.depth = 3
        let m = try Model(config: c)
        var rng = RNG(seed: 5)
        let B = 3, n = 16, D = c.embedDim
        let images = randomArray(B * c.inChans * 144, &rng)
        try m.trainStep(images: images, batch: B)   // target and context encoders now differ
        for kind in [EncoderKind.target, .context] {
            let enc = try ViTEncoder(copying: m, kind)
            var t1 = [Float](repeating: 0, count: B * n * D), p1 = [Float](repeating: 0, count: B * D)
            var t2 = t1, p2 = p1
            try m.encode(images: images, batch: B, encoder: kind, tokens: &t1, pooled: &p1)
            try enc.encode(images: images, batch: B, height: 12, width: 12, tokens: &t2, pooled: &p2)
            XCTAssertEqual(t1, t2, "\(kind) tokens")
            XCTAssertEqual(p1, p2, "\(kind) pooled")
            var l1 = [Float](repeating: 0, count: B * 3 * D), l2 = l1
            try m.encodeLayers(images: images, batch: B, encoder: kind, lastK: 3, pooled: &l1)
            try enc.encodeLayers(images: images, batch: B, height: 12, width: 12, lastK: 3, pooled: &l2)
            XCTAssertEqual(l1, l2, "\(kind) layers")
            // a copy: training on does not change it
            try m.trainStep(images: images, batch: B)
            var p3 = p1
            try enc.encode(images: images, batch: B, height: 12, width: 12, tokens: nil, pooled: &p3)
            XCTAssertEqual(p3, p2)
        }
    }

    /// An encoder whose widths are multiples of the panel packs its block linears (on a CPU with
    /// a vector kernel family) and encodes as the training model's unpacked pass does, to
    /// rounding, on 1-3 threads and in batches; every kernel family gives the same floats.
    /// (The tiny encoders above have width 8 and stay unpacked: their copies are bit-exact.)
    func testPackedWeightsEncodeAsTheModel() throws {
        var c = ModelGradientTests.tinyConfig()
        (c.imageSize, c.patchSize, c.embedDim, c.depth, c.numHeads, c.mlpRatio) = (32, 4, 48, 2, 3, 4)
        let m = try Model(config: c)
        let enc = try ViTEncoder(copying: m, .target)
        XCTAssertEqual(enc.packedWeights, ijk_isa() > IJK_ISA_C)
        var rng = RNG(seed: 12)
        let B = 5, n = 64, D = 48
        let images = randomArray(B * c.inChans * 32 * 32, &rng)
        var want = [Float](repeating: 0, count: B * n * D), wantPooled = [Float](repeating: 0, count: B * D)
        try m.encode(images: images, batch: B, encoder: .target, tokens: &want, pooled: &wantPooled)
        for threads in 1...3 {
            try enc.setThreads(threads)
            for batch in [1, B] {
                var t = [Float](repeating: .nan, count: batch * n * D)
                try enc.encode(images: images, batch: batch, height: 32, width: 32, tokens: &t, pooled: nil)
                assertCloseToScale(t, Array(want[0..<(batch * n * D)]), tol: 1e-5, "\(threads) threads, batch \(batch)")
            }
        }
        defer { ijk_limit_isa(IJK_ISA_AVX512) }
        var first: [Float] = []
        for family in 0...ijk_isa() {
            ijk_limit_isa(family)
            var t = [Float](repeating: .nan, count: B * n * D)
            try enc.encode(images: images, batch: B, height: 32, width: 32, tokens: &t, pooled: nil)
            if family == 0 { first = t } else { XCTAssertEqual(t, first, "kernel family \(family)") }
        }
    }

    func testCheckpointLoadsEitherEncoder() throws {
        var c = ModelGradientTests.tinyConfig()
        c.imageSize = 12; c.patchSize = 3
        let m = try Model(config: c)
        var rng = RNG(seed: 6)
        let images = randomArray(2 * c.inChans * 144, &rng)
        try m.trainStep(images: images, batch: 2)
        let path = NSTemporaryDirectory() + "enc-ckpt-\(getpid()).safetensors"
        defer { unlink(path) }
        try m.save(to: path, flags: [.weights, .trainingState])
        for kind in [EncoderKind.target, .context] {
            var o = EncoderLoadOptions(); o.which = kind
            let enc = try ViTEncoder.load(from: path, o)
            XCTAssertEqual(enc.source, .checkpoint)
            XCTAssertEqual(enc.shape, c.encoderShape)
            var p1 = [Float](repeating: 0, count: 2 * c.embedDim), p2 = p1
            try m.encode(images: images, batch: 2, encoder: kind, tokens: nil, pooled: &p1)
            try enc.encode(images: images, batch: 2, height: 12, width: 12, tokens: nil, pooled: &p2)
            XCTAssertEqual(p1, p2, "\(kind)")
        }
    }

    /// Batches larger than one forward chunk give the rows of one image at a time (to rounding:
    /// BLAS may sum a row differently in a product with other rows).
    func testChunkedBatchesEqualSingleImages() throws {
        let enc = try load("hf_v5")
        let B = ViTEncoder.chunkRowTarget / 36 + 3, D = enc.shape.embedDim
        var rng = RNG(seed: 9)
        let images = randomArray(B * 3 * 24 * 24, &rng)
        var all = [Float](repeating: .nan, count: B * D)
        try enc.encode(images: images, batch: B, height: 24, width: 24, tokens: nil, pooled: &all)
        for b in [0, B / 2, B - 1] {
            var one = [Float](repeating: .nan, count: D)
            try images.withUnsafeBufferPointer { p in
                try enc.encode(images: p.baseAddress! + b * 3 * 576, batch: 1, height: 24, width: 24, tokens: nil, pooled: &one)
            }
            assertCloseToScale(Array(all[(b * D)..<((b + 1) * D)]), one, tol: 1e-6, "image \(b)")
        }
    }

    /// One image on several threads runs layer by layer with every kernel split over the
    /// threads (few chunks); its tokens and last-k features equal the one-thread pass.
    func testLayerParallelPassEqualsTheSerialOne() throws {
        var c = ModelGradientTests.tinyConfig()
        (c.imageSize, c.patchSize, c.embedDim, c.depth, c.numHeads, c.mlpRatio) = (64, 8, 96, 3, 4, 4)
        let m = try Model(config: c)
        let enc = try ViTEncoder(copying: m, .target)
        var rng = RNG(seed: 11)
        let image = randomArray(c.inChans * 64 * 64, &rng), n = 64, D = 96
        var ref: [[Float]] = []
        for threads in [1, 2, 3] {
            try enc.setThreads(threads)
            var tokens = [Float](repeating: .nan, count: n * D), layers = [Float](repeating: .nan, count: 3 * D)
            try enc.encode(images: image, batch: 1, height: 64, width: 64, tokens: &tokens, pooled: nil)
            try enc.encodeLayers(images: image, batch: 1, height: 64, width: 64, lastK: 3, pooled: &layers)
            XCTAssertEqual(enc.pass.stack.layerParallel, threads > 1)
            if threads == 1 { ref = [tokens, layers]; continue }
            assertCloseToScale(tokens, ref[0], tol: 1e-6, "tokens, \(threads) threads")
            assertCloseToScale(layers, ref[1], tol: 1e-6, "layers, \(threads) threads")
        }
    }

    func testBadFilesAndInputsAreClearErrors() throws {
        let tmp = NSTemporaryDirectory() + "enc-bad-\(getpid())"
        mkdir(tmp, 0o755)
        defer { _ = try? FileManager.default.removeItem(atPath: tmp) }
        func expectError(_ path: String, _ status: Int32, _ text: String, heads: Int = 0,
                         file: StaticString = #filePath, line: UInt = #line) {
            var o = EncoderLoadOptions(); o.numHeads = heads
            XCTAssertThrowsError(try ViTEncoder.load(from: path, o), file: file, line: line) { e in
                let err = e as! IJEPAError
                XCTAssertEqual(err.status, status, "\(err)", file: file, line: line)
                XCTAssert(err.message.contains(text), "'\(err.message)' lacks '\(text)'", file: file, line: line)
            }
        }
        expectError(tmp + "/missing.safetensors", -4, "cannot open")
        expectError(tmp, -5, "without model.safetensors")
        // a Hugging Face file without its config.json
        let hf = try Data(contentsOf: dir.appendingPathComponent("hf_v5/model.safetensors"))
        try hf.write(to: URL(fileURLWithPath: tmp + "/model.safetensors"))
        expectError(tmp + "/model.safetensors", -5, "config.json")
        // truncated: the header announces more data than the file holds
        try hf.prefix(hf.count - 100).write(to: URL(fileURLWithPath: tmp + "/cut.safetensors"))
        expectError(tmp + "/cut.safetensors", -5, "truncated")
        // a PyTorch zip
        try Data([0x50, 0x4B, 0x03, 0x04, 0, 0]).write(to: URL(fileURLWithPath: tmp + "/x.pth.tar"))
        expectError(tmp + "/x.pth.tar", -5, "convert_official")
        // heads that do not divide the width
        expectError(dir.appendingPathComponent("official.safetensors").path, -1, "does not divide", heads: 5)
        // a training checkpoint's file names something else entirely
        try Data(repeating: 7, count: 64).write(to: URL(fileURLWithPath: tmp + "/junk"))
        expectError(tmp + "/junk", -5, "safetensors")

        // NaN in two tensors: the tensors are read side by side, the error names the first in
        // the layout's order (the patch embedding before the last block), every time
        var twoNaN = hf
        let st = try SafetensorsFile(bytes: [UInt8](hf))
        for name in ["layers.2.mlp.fc2.weight", "embeddings.patch_embeddings.projection.weight"] {
            let at = st.dataStart + st.entries[name]!.begin + 8
            twoNaN.replaceSubrange(at..<(at + 4), with: [0x00, 0x00, 0xC0, 0x7F])
        }
        try FileManager.default.createDirectory(atPath: tmp + "/nan", withIntermediateDirectories: true)
        try twoNaN.write(to: URL(fileURLWithPath: tmp + "/nan/model.safetensors"))
        try Data(contentsOf: dir.appendingPathComponent("hf_v5/config.json")).write(to: URL(fileURLWithPath: tmp + "/nan/config.json"))
        for _ in 0..<5 { expectError(tmp + "/nan", -7, "'embeddings.patch_embeddings.projection.weight' contains NaN") }

        let enc = try load("hf_v5")
        var out = [Float](repeating: 0, count: 64)
        let img = [Float](repeating: 0, count: 3 * 24 * 24)
        XCTAssertThrowsError(try enc.encode(images: img, batch: 1, height: 3, width: 24, tokens: nil, pooled: &out))
        XCTAssertThrowsError(try enc.encode(images: img, batch: 0, height: 24, width: 24, tokens: nil, pooled: &out))
        XCTAssertThrowsError(try enc.encodeLayers(images: img, batch: 1, height: 24, width: 24, lastK: 4, pooled: &out))
        var nan = img; nan[5] = .nan
        XCTAssertThrowsError(try enc.encode(images: nan, batch: 1, height: 24, width: 24, tokens: nil, pooled: &out)) { e in
            XCTAssertEqual((e as! IJEPAError).status, -7)
        }
        XCTAssertThrowsError(try enc.numTokens(height: 1 << 30, width: 1 << 30))
    }
}

/// Requests whose scratch cannot fit are errors before any allocation (an array allocation that
/// fails would end the process).
final class ResampleLimitTests: XCTestCase {
    func testHugeScratchIsRefused() {
        XCTAssertThrowsError(try checkScratch(resampleScratchBytes(inH: 1024, inW: 1024, channels: 65536, outH: 1,
                                                                   outW: 1 << 20, .bicubic), "test")) { e in
            XCTAssertEqual((e as! IJEPAError).status, -3)
        }
        XCTAssertNoThrow(try checkScratch(resampleScratchBytes(inH: 16, inW: 16, channels: 32, outH: 20, outW: 24,
                                                               .bicubicAntialiased), "test"))
        // a 65536-pixel-wide image shrunk to 1 column: its taps alone are 16 * 131073 bytes
        XCTAssertEqual(axisBytes(65536, 1, .bilinearAntialiased), 16 * 131073)
    }
}
