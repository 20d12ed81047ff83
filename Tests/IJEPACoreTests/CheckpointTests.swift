import Foundation
import XCTest
@testable import IJEPACore

/// Save/load round trips, exact resume, and a loader that survives damaged files.
final class CheckpointTests: XCTestCase {
    var dir: String = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "ijepa-ckpt-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    func buffer(_ b: FloatBuffer, _ n: Int) -> [Float] { Array(UnsafeBufferPointer(start: b.ptr, count: n)) }

    func trainedModel(steps: Int, seed: UInt64 = 5) throws -> (Model, [Float]) {
        var c = ModelGradientTests.tinyConfig()
        c.seed = seed; c.warmupSteps = 3; c.totalSteps = 20; c.imageSize = 16; c.minKeep = 2
        let m = try Model(config: c)
        var rng = RNG(seed: 1)
        let images = randomArray(4 * 10 * c.inChans * c.imageSize * c.imageSize, &rng)
        for s in 0..<steps { try trainOne(m, images, s) }
        return (m, images)
    }

    func trainOne(_ m: Model, _ images: [Float], _ s: Int) throws {
        let c = m.config, per = 4 * c.inChans * c.imageSize * c.imageSize
        _ = try images.withUnsafeBufferPointer { try m.trainStep(images: $0.baseAddress! + (s % 10) * per, batch: 4) }
    }

    func assertSameState(_ a: Model, _ b: Model, file: StaticString = #filePath, line: UInt = #line) {
        let n = a.layout.totalCount, e = a.layout.encoderCount
        XCTAssertEqual(buffer(a.params, n), buffer(b.params, n), "params", file: file, line: line)
        XCTAssertEqual(buffer(a.target, e), buffer(b.target, e), "target", file: file, line: line)
        XCTAssertEqual(buffer(a.adamM, n), buffer(b.adamM, n), "adam m", file: file, line: line)
        XCTAssertEqual(buffer(a.adamV, n), buffer(b.adamV, n), "adam v", file: file, line: line)
        XCTAssertEqual(a.step, b.step, file: file, line: line)
        XCTAssertEqual(a.collator.counter, b.collator.counter, file: file, line: line)
        XCTAssertEqual(a.collator.locationRNG, b.collator.locationRNG, file: file, line: line)
    }

    func testRoundTripWeightsBitForBit() throws {
        let (m, images) = try trainedModel(steps: 3)
        let path = dir + "/w.safetensors"
        try m.save(to: path, flags: .weights)
        let l = try Model.load(from: path)
        XCTAssertEqual(l.config, m.config)
        XCTAssertEqual(buffer(l.params, m.layout.totalCount), buffer(m.params, m.layout.totalCount))
        XCTAssertEqual(buffer(l.target, m.layout.encoderCount), buffer(m.target, m.layout.encoderCount))
        XCTAssertEqual(l.step, 0, "a weights-only checkpoint does not carry the step")
        // encode gives identical outputs
        let D = m.config.embedDim, B = 3
        var p1 = [Float](repeating: 0, count: B * D), p2 = p1
        try images.withUnsafeBufferPointer { img in
            try p1.withUnsafeMutableBufferPointer { try m.encode(images: img.baseAddress!, batch: B, encoder: .target, tokens: nil, pooled: $0.baseAddress!) }
            try p2.withUnsafeMutableBufferPointer { try l.encode(images: img.baseAddress!, batch: B, encoder: .target, tokens: nil, pooled: $0.baseAddress!) }
        }
        XCTAssertEqual(p1, p2)
        // official names, fixed tables included, readable as plain safetensors
        let f = try SafetensorsFile(path: path)
        XCTAssertNotNil(f.entries["encoder.pos_embed"])
        XCTAssertNotNil(f.entries["predictor.predictor_pos_embed"])
        XCTAssertNotNil(f.entries["target_encoder.blocks.1.mlp.fc2.weight"])
        XCTAssertEqual(f.entries["predictor.mask_token"]?.shape, [1, 1, 8])
        XCTAssertNil(f.entries["adam_m.encoder.norm.weight"])
        XCTAssertEqual(f.headerSize % 8, 0, "header padded to 8 bytes")
    }

    func testResumeIsExact() throws {
        let N = 7, k = 3
        let (straight, images) = try trainedModel(steps: N)
        let (first, _) = try trainedModel(steps: k)
        let path = dir + "/state.safetensors"
        try first.save(to: path, flags: [.weights, .trainingState])
        let resumed = try Model.load(from: path)
        assertSameState(first, resumed)
        for s in k..<N { try trainOne(resumed, images, s) }
        assertSameState(straight, resumed)
        XCTAssertEqual(straight.lastLoss, resumed.lastLoss)
    }

    func testLoadWeightsStrictNamesMissingAndUnexpected() throws {
        let (m, _) = try trainedModel(steps: 1)
        let n = m.layout.totalCount
        // a file with one tensor dropped, one extra, and DDP "module." names
        var w = SafetensorsWriter()
        let extra: [Float] = [1, 2]
        try m.weightTensors { list in
            for (name, shape, p) in list where name != "predictor.predictor_norm.bias" {
                let ddp = name.replacingOccurrences(of: "encoder.", with: "encoder.module.", options: .anchored)
                w.add(ddp, shape: shape, floats: p)
            }
            extra.withUnsafeBufferPointer { w.add("encoder.cls_token", shape: [2], floats: $0.baseAddress!) }
            try w.write(atomicallyTo: dir + "/partial.safetensors")
        }
        let fresh = try Model(config: m.config)
        let before = buffer(fresh.params, n)
        XCTAssertThrowsError(try fresh.loadWeights(from: dir + "/partial.safetensors", strict: true)) { e in
            let msg = (e as? IJEPAError)?.message ?? ""
            XCTAssert(msg.contains("predictor.predictor_norm.bias"), msg)
            XCTAssertEqual((e as? IJEPAError)?.status, -5)
        }
        XCTAssertEqual(buffer(fresh.params, n), before, "a failed load leaves the model unchanged")
        try fresh.loadWeights(from: dir + "/partial.safetensors", strict: false)
        let t = m.layout.tensor(named: "predictor.predictor_norm.bias")!
        for x in m.layout.tensors where x.name != t.name {
            XCTAssertEqual(Array(UnsafeBufferPointer(start: fresh.params.ptr + x.offset, count: x.count)),
                           Array(UnsafeBufferPointer(start: m.params.ptr + x.offset, count: x.count)), x.name)
        }
        XCTAssertEqual(Array(UnsafeBufferPointer(start: fresh.params.ptr + t.offset, count: t.count)),
                       Array(before[t.offset..<(t.offset + t.count)]), "missing tensor left as it was")
    }

    func testDamagedFilesGiveFormatErrorsNotCrashes() throws {
        let (m, _) = try trainedModel(steps: 1)
        let path = dir + "/good.safetensors"
        try m.save(to: path, flags: [.weights, .trainingState])
        let good = try readWholeFile(path)
        var rng = RNG(seed: 42)
        func expectFailure(_ bytes: [UInt8], _ what: String) {
            let p = dir + "/bad.safetensors"
            FileManager.default.createFile(atPath: p, contents: Data(bytes))
            do {
                _ = try Model.load(from: p)
                XCTFail("\(what): loaded a damaged file")
            } catch let e as IJEPAError {
                XCTAssert([-5, -7].contains(e.status), "\(what): status \(e.status) \(e.message)")
                XCTAssertFalse(e.message.isEmpty)
            } catch { XCTFail("\(what): \(error)") }
        }
        // truncations at many offsets (header and data)
        var cuts = Array(stride(from: 0, to: good.count, by: max(1, good.count / 60)))
        cuts += [1, 7, 8, 9, 16, good.count - 1]
        for c in cuts where c < good.count { expectFailure(Array(good[0..<c]), "truncated at \(c)") }
        // absurd header lengths
        for n: UInt64 in [0, 1, UInt64(good.count), 1 << 40, UInt64.max] {
            var b = good
            for i in 0..<8 { b[i] = UInt8((n >> (8 * UInt64(i))) & 0xFF) }
            expectFailure(b, "header length \(n)")
        }
        // flipped bytes inside the header: either a clear error or (if the flip lands in a
        // harmless place such as padding or a digit that keeps it valid) a loadable model
        let hlen = Int(good[0]) | Int(good[1]) << 8 | Int(good[2]) << 16
        for _ in 0..<200 {
            var b = good
            let i = 8 + rng.randint(0, hlen)
            b[i] ^= UInt8(1 << rng.randint(0, 8))
            let p = dir + "/flip.safetensors"
            FileManager.default.createFile(atPath: p, contents: Data(b))
            do { _ = try Model.load(from: p) } catch let e as IJEPAError {
                XCTAssert([-5, -7, -3].contains(e.status), "flip at \(i): \(e.status) \(e.message)")
            }
        }
    }

    func testCraftedHeadersAreRejected() throws {
        func file(_ header: String, data: Int = 16) -> [UInt8] {
            let h = Array(header.utf8)
            var b: [UInt8] = []
            for i in 0..<8 { b.append(UInt8((UInt64(h.count) >> (8 * UInt64(i))) & 0xFF)) }
            return b + h + [UInt8](repeating: 0, count: data)
        }
        let cases: [(String, String)] = [
            (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}"#, "duplicate"),
            (#"{"a":{"dtype":"Q9","shape":[2],"data_offsets":[0,8]}}"#, "unknown dtype"),
            (#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, "needs"),
            (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,100]}}"#, "outside"),
            (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#, "overlap"),
            (#"{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, "invalid shape"),
            (#"{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#, "invalid shape"),
            (#"{"a":[1,2]}"#, "lacks"),
            (#"[1,2,3]"#, "not a JSON object"),
            (#"{"a":"#, "JSON"),
            (String(repeating: "[", count: 5000), "JSON"),
        ]
        for (h, expect) in cases {
            XCTAssertThrowsError(try SafetensorsFile(bytes: file(h)), expect) { e in
                let msg = (e as? IJEPAError)?.message ?? "\(e)"
                XCTAssert(msg.contains(expect), "\(expect): \(msg)")
            }
        }
        // a well-formed file with the wrong dtype for a weight
        let (m, _) = try trainedModel(steps: 0)
        var w = SafetensorsWriter()
        let ints = [Int32](repeating: 1, count: 8)
        try ints.withUnsafeBytes { raw in
            w.add("encoder.norm.weight", dtype: "I32", shape: [8], bytes: raw)
            try w.write(atomicallyTo: dir + "/dtype.safetensors")
        }
        XCTAssertThrowsError(try m.loadWeights(from: dir + "/dtype.safetensors", strict: false)) { e in
            XCTAssert(((e as? IJEPAError)?.message ?? "").contains("dtype"), "\(e)")
        }
    }

    func testSaveErrorsAndAtomicity() throws {
        let (m, _) = try trainedModel(steps: 1)
        XCTAssertThrowsError(try m.save(to: dir + "/no/such/dir/x.safetensors", flags: .weights)) { e in
            XCTAssertEqual((e as? IJEPAError)?.status, -4)
        }
        XCTAssertThrowsError(try m.save(to: dir + "/x.safetensors", flags: SaveFlags(rawValue: 8))) { e in
            XCTAssertEqual((e as? IJEPAError)?.status, -1)
        }
        // overwrite keeps a valid file and leaves no temporary behind
        let path = dir + "/x.safetensors"
        try m.save(to: path, flags: .weights)
        try m.save(to: path, flags: [.weights, .trainingState])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["x.safetensors"])
        XCTAssertEqual(try SafetensorsFile(path: path).metadata["ijepa.contents"], "training_state")
    }

    func testSaveRemovesTemporariesOfKilledSaves() throws {
        let (m, _) = try trainedModel(steps: 0)
        let path = dir + "/k.safetensors"
        // what a save killed with SIGKILL leaves: a temporary of a process that no longer exists
        let stale = path + ".tmp-2147483646-1a2b3c"
        FileManager.default.createFile(atPath: stale, contents: Data([1, 2, 3]))
        let other = dir + "/other.safetensors.tmp-2147483646-1a2b3c"   // another file's: not ours to touch
        FileManager.default.createFile(atPath: other, contents: Data([1]))
        try m.save(to: path, flags: .weights)
        XCTAssertFalse(FileManager.default.fileExists(atPath: stale))
        XCTAssertTrue(FileManager.default.fileExists(atPath: other))
        XCTAssertNoThrow(try Model.load(from: path))
    }

    func testJSONParser() throws {
        let v = try JSONValue.parse(#" {"a": [1, -2.5e3, true, null, "x\"\u00e9\ud83d\ude00"], "b": {}} "#)
        XCTAssertEqual(v["a"]?.array?[1].number, -2500)
        XCTAssertEqual(v["a"]?.array?[4].string, "x\"é😀")
        XCTAssertEqual(try JSONValue.parse(v.serialized), v)
        for bad in ["", "{", "{\"a\":1,}", "[1,]", "01x", "\"\\x\"", "\"\u{1}\"", "{\"a\":1}x", "nul", "1.", "-", "\"\\ud800\""] {
            XCTAssertThrowsError(try JSONValue.parse(bad), bad)
        }
    }
}

/// A checkpoint written by PyTorch's safetensors.torch.save_file from official-layout modules
/// (DDP "module." names, fixed tables included; tools/make_interop_fixture.py) loads strictly
/// and encodes to PyTorch's features (max error ≤ 1e-5 × max |feature|).
final class TorchInteropTests: XCTestCase {
    func testPyTorchCheckpointLoadsAndEncodesTheSame() throws {
        var c = ModelConfig()
        c.imageSize = 24; c.patchSize = 4; c.inChans = 3
        c.embedDim = 32; c.depth = 2; c.numHeads = 2
        c.predEmbedDim = 16; c.predDepth = 2; c.minKeep = 2
        let m = try Model(config: c)
        try m.loadWeights(from: fixturesDirectory.appendingPathComponent("torch_checkpoint.safetensors").path, strict: true)
        let check = try SafetensorsFile(path: fixturesDirectory.appendingPathComponent("torch_checkpoint_check.safetensors").path)
        let images = try check.floats("images")
        for (kind, key) in [(EncoderKind.target, "target_pooled"), (.context, "context_pooled")] {
            var pooled = [Float](repeating: 0, count: 3 * 32)
            try images.withUnsafeBufferPointer { i in
                try pooled.withUnsafeMutableBufferPointer { o in
                    try m.encode(images: i.baseAddress!, batch: 3, encoder: kind, tokens: nil, pooled: o.baseAddress!)
                }
            }
            assertCloseToScale(pooled, try check.floats(key), tol: 1e-5, key)
        }
    }
}
