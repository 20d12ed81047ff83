import Foundation
import XCTest
@testable import IJEPACore

/// Whole-model parity with a PyTorch re-implementation of the official training step
/// (tools/ijepa_torch.py, fixtures written by tools/make_fixtures.py). Tolerances (float32 on
/// both sides): forward max error ≤ 1e-5 × the reference tensor's max |value|, gradients
/// ≤ 1e-4 × max |value|; parameters and target encoder after 1 and 3 AdamW+EMA steps
/// elementwise |a − b| ≤ 1e-7 + 1e-5·|b| (absolute part for tensors that start at zero, whose
/// first Adam step is ±lr·sign(g) and whose gradient can be pure rounding noise, like the
/// key bias of attention, which softmax makes exactly gradient-free in exact arithmetic).
final class FixtureTests: XCTestCase {
    struct Fixture {
        let file: SafetensorsFile
        let config: ModelConfig
        let batch: Int
        let steps: Int
        let lr: [Float], wd: [Float], ema: [Float]
    }

    static func load(_ name: String) throws -> Fixture {
        let url = fixturesDirectory.appendingPathComponent(name + ".safetensors")
        let f = try SafetensorsFile(path: url.path)
        guard let js = f.metadata["config"], let obj = try JSONSerialization.jsonObject(with: Data(js.utf8)) as? [String: Any]
        else { throw IJEPAError.format("fixture \(name): no config metadata") }
        func i(_ k: String) -> Int { (obj[k] as? NSNumber)?.intValue ?? -1 }
        func fl(_ k: String) -> [Float] { ((obj[k] as? [NSNumber]) ?? []).map { $0.floatValue } }
        var c = ModelConfig()
        c.imageSize = i("image_size"); c.patchSize = i("patch_size"); c.inChans = i("in_chans")
        c.embedDim = i("embed_dim"); c.depth = i("depth"); c.numHeads = i("num_heads")
        c.mlpRatio = (obj["mlp_ratio"] as? NSNumber)?.floatValue ?? 4
        c.predEmbedDim = i("pred_embed_dim"); c.predDepth = i("pred_depth"); c.predNumHeads = i("pred_num_heads")
        c.numEncMasks = i("num_enc_masks"); c.numPredMasks = i("num_pred_masks"); c.minKeep = i("min_keep")
        c.nThreads = 2
        return Fixture(file: f, config: c, batch: i("batch"), steps: i("steps"), lr: fl("lr"), wd: fl("wd"), ema: fl("ema"))
    }

    func masks(_ f: Fixture, step s: Int) throws -> MaskSet {
        let e = try f.file.entry("step\(s).masks_enc"), p = try f.file.entry("step\(s).masks_pred")
        return MaskSet(batch: e.shape[1], numEnc: e.shape[0], kEnc: e.shape[2], numPred: p.shape[0], kPred: p.shape[2],
                       enc: try f.file.ints("step\(s).masks_enc").map { Int32($0) },
                       pred: try f.file.ints("step\(s).masks_pred").map { Int32($0) })
    }

    func view(_ b: FloatBuffer, _ t: TensorInfo) -> [Float] {
        Array(UnsafeBufferPointer(start: b.ptr + t.offset, count: t.count))
    }

    func compareState(_ m: Model, _ f: Fixture, prefix: String) throws {
        for t in m.layout.tensors {
            assertClose(view(m.params, t), try f.file.floats(prefix + t.name), atol: 1e-7, rtol: 1e-5, "\(prefix)\(t.name)")
        }
        for t in m.layout.targetTensors {
            assertClose(view(m.target, t), try f.file.floats(prefix + t.name), atol: 1e-7, rtol: 1e-5, "\(prefix)\(t.name)")
        }
    }

    func runFixture(_ name: String) throws {
        let f = try Self.load(name)
        let m = try Model(config: f.config)
        m.keepTargets = true   // to compare the layer-normed targets below
        XCTAssertEqual(m.layout.tensors.count, f.file.entries.keys.filter { $0.hasPrefix("init.") }.count,
                       "every trainable tensor of the reference is in the layout and vice versa")
        for t in m.layout.tensors {
            let v = try f.file.floats("init." + t.name)
            XCTAssertEqual(v.count, t.count, t.name)
            (m.params.ptr + t.offset).update(from: v, count: t.count)
        }
        m.target.ptr.update(from: m.params.ptr, count: m.layout.encoderCount)
        assertCloseToScale(m.posEmbed, try f.file.floats("pos_embed"), tol: 1e-6, "pos_embed")
        assertCloseToScale(m.predPosEmbed, try f.file.floats("predictor_pos_embed"), tol: 1e-6, "predictor_pos_embed")

        for s in 1...f.steps {
            let img = try f.file.floats("step\(s).images")
            let mk = try masks(f, step: s)
            let loss = try img.withUnsafeBufferPointer {
                try m.forwardBackward(images: $0.baseAddress!, batch: f.batch, masks: mk)
            }
            let refLoss = try f.file.floats("step\(s).loss")[0]
            XCTAssertEqual(loss, refLoss, accuracy: 1e-5 * abs(refLoss), "\(name) step \(s) loss")
            if s == 1 {
                for key in ["targets", "ctx_out", "pred_out"] {
                    assertCloseToScale(m.lastTensor(key) ?? [], try f.file.floats("step1." + key), tol: 1e-5, "\(name) step1.\(key)")
                }
                // the target encoder's rows the step computed (the patches some target block
                // uses), then all of them through encode
                let full = try f.file.floats("step1.target_full")
                let N = f.config.numPatches, D = f.config.embedDim
                var picked = [Float]()
                for b in 0..<f.batch {
                    for j in m.selOff[b]..<m.selOff[b + 1] {
                        let n = Int(m.selRows[j])
                        picked += full[((b * N + n) * D)..<((b * N + n + 1) * D)]
                    }
                }
                XCTAssertLessThan(m.lastTargetRows, f.batch * N, "\(name): some patches are in no target block")
                assertCloseToScale(m.lastTensor("target_rows") ?? [], picked, tol: 1e-5, "\(name) step1.target_rows")
                var tokens = [Float](repeating: 0, count: f.batch * N * D)
                try img.withUnsafeBufferPointer { x in
                    try tokens.withUnsafeMutableBufferPointer {
                        try m.encode(images: x.baseAddress!, batch: f.batch, encoder: .target, tokens: $0.baseAddress!, pooled: nil)
                    }
                }
                assertCloseToScale(tokens, full, tol: 1e-5, "\(name) step1.target_full (encode)")
                for t in m.layout.tensors {
                    assertCloseToScale(view(m.grads, t), try f.file.floats("step1.grad." + t.name), tol: 1e-4, "\(name) grad \(t.name)")
                }
            }
            m.overrideLR = f.lr[s - 1]; m.overrideWD = f.wd[s - 1]; m.overrideEMA = f.ema[s - 1]
            let st = try m.optimizerStep()
            XCTAssertEqual(st.step, Int64(s))
            if s == 1 { try compareState(m, f, prefix: "after1.") }
        }
        try compareState(m, f, prefix: "after\(f.steps).")
    }

    func testParityRGB() throws { try runFixture("rgb") }
    func testParityGrayscale() throws { try runFixture("gray") }
    func testParityTwoContextsThreeTargetsUnequalWidths() throws { try runFixture("multi") }
}
