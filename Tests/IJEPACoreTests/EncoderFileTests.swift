import CIJEPAKernels
import Foundation
import XCTest
@testable import IJEPACore

/// The libijepa encoder file (ViTEncoder.save / ijepa_encoder_save): a saved encoder loads
/// mapped and encodes bit for bit as the one saved, on every kernel family; files another
/// writer laid out differently load by reading; damaged ones are clear errors.
final class EncoderFileTests: XCTestCase {
    let tmp = NSTemporaryDirectory() + "enc-file-\(getpid())"
    override func setUp() { mkdir(tmp, 0o755) }
    override func tearDown() { _ = try? FileManager.default.removeItem(atPath: tmp) }

    func model() throws -> Model {
        var c = ModelGradientTests.tinyConfig()
        (c.imageSize, c.patchSize, c.embedDim, c.depth, c.numHeads, c.mlpRatio) = (32, 4, 48, 2, 3, 4)
        return try Model(config: c)
    }

    func tokens(_ e: ViTEncoder, _ images: [Float], batch: Int, size: Int = 32) throws -> [Float] {
        let n = try e.numTokens(height: size, width: size)
        var t = [Float](repeating: .nan, count: batch * n * e.shape.embedDim)
        try e.encode(images: images, batch: batch, height: size, width: size, tokens: &t, pooled: nil)
        return t
    }

    func testSavedEncoderLoadsMappedAndEncodesBitForBit() throws {
        let m = try model()
        var rng = RNG(seed: 31)
        let images = randomArray(3 * 3 * 32 * 32, &rng)
        var o = EncoderLoadOptions(); o.nThreads = 2
        defer { ijk_limit_isa(IJK_ISA_AVX512) }
        // saved packed (a vector CPU) and saved plain (portable kernels: BLAS products)
        for family in Set([ijk_isa(), IJK_ISA_C]).sorted() {
            ijk_limit_isa(family)
            let enc = try ViTEncoder(copying: m, .context)
            try enc.setThreads(2)
            let path = tmp + "/enc-\(family).safetensors"
            try enc.save(to: path)
            let want = try tokens(enc, images, batch: 3)
            let back = try ViTEncoder.load(from: path, o)
            XCTAssert(back.weightsMapped)
            XCTAssertEqual(back.packedWeights, enc.packedWeights)
            XCTAssertEqual(back.shape, enc.shape)
            XCTAssertEqual(back.source, .model)
            XCTAssertEqual(back.which, .context)
            XCTAssertEqual(back.posInterpolation, enc.posInterpolation)
            XCTAssertEqual(memcmp(back.weights.ptr, enc.weights.ptr, 4 * enc.layout.totalCount), 0)
            XCTAssertEqual(try tokens(back, images, batch: 3), want, "family \(family)")
            // another size (resized positions) and the packed file on every kernel family
            let other = randomArray(3 * 36 * 40, &rng)
            var a = [Float](repeating: .nan, count: 90 * 48), b = a
            try enc.encode(images: other, batch: 1, height: 36, width: 40, tokens: &a, pooled: nil)
            try back.encode(images: other, batch: 1, height: 36, width: 40, tokens: &b, pooled: nil)
            XCTAssertEqual(a, b)
            let st = try SafetensorsFile(openingLazily: path)
            XCTAssertEqual(st.dataStart % EncoderFile.alignment, 0)
            XCTAssertEqual(st.entries["blocks.0.attn.qkv.weight_panels"] != nil, enc.packedWeights)
            XCTAssertEqual(st.entries["blocks.0.attn.qkv.weight"] != nil, !enc.packedWeights)
            if enc.packedWeights {
                for f in 0...family {
                    ijk_limit_isa(f)
                    XCTAssertEqual(try tokens(back, images, batch: 3), want, "saved on \(family), run on family \(f)")
                }
            }
        }
        // a plain file (official names) loaded where packing applies: packed after mapping,
        // equal to the model to rounding, the file itself untouched
        ijk_limit_isa(IJK_ISA_AVX512)
        let plain = tmp + "/enc-\(IJK_ISA_C).safetensors"
        let before = try Data(contentsOf: URL(fileURLWithPath: plain))
        let back = try ViTEncoder.load(from: plain, o)
        XCTAssertEqual(back.packedWeights, ijk_isa() > IJK_ISA_C)
        let n = 64 * 48
        var want = [Float](repeating: 0, count: 3 * n), got = want
        try m.encode(images: images, batch: 3, encoder: .context, tokens: &want, pooled: nil)
        got = try tokens(back, images, batch: 3)
        assertCloseToScale(got, want, tol: 1e-5, "plain file")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: plain)), before)
        // saving over the file an encoder maps: the encoder keeps its pages
        try ViTEncoder(copying: try model(), .target).save(to: plain)
        XCTAssertEqual(try tokens(back, images, batch: 3), got)
    }

    /// A FloatBuffer viewing a mapping: bounds checked, writes private, and growing it takes
    /// memory of its own (never free() on the mapped pages).
    func testAViewOfAMappingIsBoundedPrivateAndGrowsIntoItsOwnMemory() throws {
        let path = tmp + "/floats"
        let bytes = [Float](repeating: 2, count: 8).withUnsafeBytes { Data($0) }
        try bytes.write(to: URL(fileURLWithPath: path))
        let m = try FileMapping(try OpenFile(path))
        XCTAssertThrowsError(try FloatBuffer(viewing: m, byteOffset: 4, count: 8))
        XCTAssertThrowsError(try FloatBuffer(viewing: m, byteOffset: 2, count: 1))
        let b = try FloatBuffer(viewing: m, byteOffset: 4, count: 7)
        XCTAssertEqual(b.ptr[6], 2)
        b.ptr[0] = 7
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), bytes)
        try b.ensure(100)
        XCTAssertEqual(b.capacity, 100)
        XCTAssertEqual(b.ptr[99], 0)
    }

    func testOtherLayoutsAreReadAndDamageIsAClearError() throws {
        let enc = try ViTEncoder(copying: try model(), .target)
        let path = tmp + "/enc.safetensors"
        try enc.save(to: path)
        let st = try SafetensorsFile(path: path)
        var rng = RNG(seed: 5)
        let images = randomArray(2 * 3 * 32 * 32, &rng)
        let want = try tokens(enc, images, batch: 2)
        /// The saved file rewritten by the generic writer: tensors in reverse order, tensor
        /// `f64` as F64, tensor `drop` left out, a tensor `extra` added, the metadata edited.
        func rewrite(_ name: String, reversed: Bool = false, f64: String? = nil, drop: String? = nil,
                     extra: String? = nil, edit: (inout [String: JSONValue]) -> Void = { _ in }) throws -> String {
            var j = Dictionary(uniqueKeysWithValues: try JSONValue.parse(Array(st.metadata[EncoderFile.metadataKey]!.utf8)).object!)
            edit(&j)
            var tensors: [(String, String, [Int], Data)] = []
            for k in (reversed ? st.names.reversed() : st.names) where k != drop {
                let v = try st.floats(k)
                let data = k == f64 ? v.map(Double.init).withUnsafeBytes { Data($0) } : v.withUnsafeBytes { Data($0) }
                tensors.append((k, k == f64 ? "F64" : "F32", st.entries[k]!.shape, data))
            }
            if let extra { tensors.append((extra, "F32", [1], [Float(1)].withUnsafeBytes { Data($0) })) }
            var w = SafetensorsWriter()
            w.metadata = [(EncoderFile.metadataKey, JSONValue.object(j.sorted { $0.key < $1.key }).serialized)]
            let out = tmp + "/" + name
            // the writer borrows each tensor's bytes until write returns
            func add(_ i: Int) throws {
                if i == tensors.count { return try w.write(atomicallyTo: out) }
                try tensors[i].3.withUnsafeBytes { raw in
                    w.add(tensors[i].0, dtype: tensors[i].1, shape: tensors[i].2, bytes: raw)
                    try add(i + 1)
                }
            }
            try add(0)
            return out
        }
        func expectError(_ p: String, _ status: Int32, _ text: String, file: StaticString = #filePath, line: UInt = #line) {
            XCTAssertThrowsError(try ViTEncoder.load(from: p), file: file, line: line) { e in
                let err = e as! IJEPAError
                XCTAssertEqual(err.status, status, "\(err)", file: file, line: line)
                XCTAssert(err.message.contains(text), "'\(err.message)' lacks '\(text)'", file: file, line: line)
            }
        }
        // the same tensors in another order: read into memory (not mapped), the same features
        let same = try ViTEncoder.load(from: try rewrite("same.safetensors"))
        XCTAssert(same.weightsMapped)
        let rev = try ViTEncoder.load(from: try rewrite("rev.safetensors", reversed: true))
        XCTAssertFalse(rev.weightsMapped)
        XCTAssertEqual(try tokens(rev, images, batch: 2), want)
        XCTAssertEqual(try tokens(same, images, batch: 2), want)
        expectError(try rewrite("f64.safetensors", f64: "norm.bias"), -5, "'norm.bias' has dtype F64, not F32")
        expectError(try rewrite("v2.safetensors") { $0["version"] = .number(2) }, -5, "format version is 2")
        expectError(try rewrite("src.safetensors") { $0["source"] = .string("onnx") }, -5, "'source' is missing or unknown")
        expectError(try rewrite("panel.safetensors") { $0["packed_panel"] = .number(8) }, -5, "panels of 8 columns")
        expectError(try rewrite("eps.safetensors") { $0["layer_norm_eps"] = nil }, -5, "'layer_norm_eps' is missing")
        expectError(try rewrite("depth.safetensors") { $0["depth"] = .number(3) }, -5, "tensors miss blocks.2.")
        expectError(try rewrite("w.safetensors") { $0["embed_dim"] = .number(96) }, -5, "expected")
        expectError(try rewrite("drop.safetensors", drop: "norm.weight"), -5, "tensors miss norm.weight")
        expectError(try rewrite("extra.safetensors", extra: "head.weight"), -5, "not the encoder's: head.weight")
        let heads = try rewrite("heads.safetensors") { $0["num_heads"] = .number(5) }
        expectError(heads, -5, "heads do not divide the width 48")
        // NaN in the mapped weights: the first tensor in layout order is named
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        for name in ["blocks.1.mlp.fc2.bias", "blocks.0.norm2.weight"] {
            let at = st.dataStart + st.entries[name]!.begin
            bytes.replaceSubrange(at..<(at + 4), with: [0x00, 0x00, 0xC0, 0x7F])
        }
        try bytes.write(to: URL(fileURLWithPath: tmp + "/nan.safetensors"))
        expectError(tmp + "/nan.safetensors", -7, "'blocks.0.norm2.weight' contains NaN")
        // truncated: refused before anything is mapped
        try bytes.prefix(bytes.count - 4).write(to: URL(fileURLWithPath: tmp + "/cut.safetensors"))
        expectError(tmp + "/cut.safetensors", -5, "truncated")
        // the encoder of the libijepa file ignores which_encoder and honours num_heads
        var o = EncoderLoadOptions(); o.which = .context; o.numHeads = 6
        let e6 = try ViTEncoder.load(from: path, o)
        XCTAssertEqual(e6.shape.numHeads, 6)
        XCTAssertEqual(e6.which, .target)
        o.numHeads = 5
        XCTAssertThrowsError(try ViTEncoder.load(from: path, o)) { XCTAssertEqual(($0 as! IJEPAError).status, -1) }
    }
}
