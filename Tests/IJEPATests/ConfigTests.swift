import Foundation
import IJEPA
import XCTest

final class ConfigTests: XCTestCase {
    func testDefaultsAreTheOfficialRecipe() throws {
        let c = Config()
        XCTAssertEqual([c.imageSize, c.patchSize, c.inChans, c.embedDim, c.depth, c.numHeads], [224, 16, 3, 192, 12, 3])
        XCTAssertEqual([c.predEmbedDim, c.predDepth, c.predNumHeads], [384, 6, 0])
        XCTAssertEqual(c.mlpRatio, 4)
        XCTAssertEqual([c.numEncMasks, c.numPredMasks, c.minKeep], [1, 4, 10])
        XCTAssertFalse(c.allowOverlap)
        XCTAssertFalse(c.fullGrid)
        XCTAssertEqual(c.encMaskScale, 0.85...1.0)
        XCTAssertEqual(c.predMaskScale, 0.15...0.2)
        XCTAssertEqual(c.aspectRatio, 0.75...1.5)
        XCTAssertEqual([c.startLR, c.lr, c.finalLR], [2e-4, 1e-3, 1e-6])
        XCTAssertEqual([c.weightDecay, c.finalWeightDecay, c.emaStart, c.emaEnd], [0.04, 0.4, 0.996, 1.0])
        XCTAssertEqual([c.warmupSteps, c.totalSteps], [1000, 10000])
        XCTAssertEqual(c.seed, 0)
        XCTAssertEqual(c.nThreads, 0)
        XCTAssertEqual([c.gridSize, c.numPatches, c.floatsPerImage], [14, 196, 3 * 224 * 224])
        XCTAssertEqual(Config.preset(.vitTiny), c)
        try c.validate()
    }

    func testPresets() throws {
        XCTAssertEqual(Config.Preset.allCases.count, 9)
        for p in Config.Preset.allCases {
            let byName = try Config.preset(p.rawValue)
            XCTAssertEqual(byName, Config.preset(p), p.rawValue)
            XCTAssertEqual(Config(preset: p), byName, p.rawValue)
            XCTAssertNoThrow(try byName.validate(), p.rawValue)
        }
        let base = Config.preset(.vitBase)
        XCTAssertEqual([base.embedDim, base.depth, base.numHeads], [768, 12, 12])
        let huge = try Config.preset("vit_huge")
        XCTAssertEqual([huge.embedDim, huge.depth, huge.patchSize, huge.predDepth], [1280, 32, 14, 12])
        let fm = Config.preset(.fmnistTiny)
        XCTAssertEqual([fm.imageSize, fm.patchSize, fm.inChans, fm.predEmbedDim, fm.predDepth], [32, 4, 1, 96, 4])
        // fmnist_tiny_ragged is fmnist_tiny plus ragged contexts, nothing else; only it is ragged.
        var ragged = Config.preset(.fmnistTinyRagged)
        XCTAssertTrue(ragged.raggedContext)
        ragged.raggedContext = false
        XCTAssertEqual(ragged, fm)
        for p in Config.Preset.allCases where p != .fmnistTinyRagged {
            XCTAssertFalse(Config.preset(p).raggedContext, p.rawValue)
        }

        // Unknown names throw, and the message lists exactly the engine's presets: every enum
        // case must be there (catches the enum drifting from the engine).
        let e = assertThrows(-1, "unknown preset") { () throws(IJEPAError) in try Config.preset("vit_enormous") }
        for p in Config.Preset.allCases {
            XCTAssertTrue(e?.message.contains(p.rawValue) ?? false, "\(p.rawValue) missing from: \(e?.message ?? "")")
        }
    }

    func testValidationRejectsBadFieldsAndNamesThem() throws {
        let cases: [(String, (inout Config) -> Void)] = [
            ("image_size", { $0.patchSize = 5 }),                   // 224 % 5 != 0
            ("patch_size", { $0.patchSize = 0 }),
            ("embed_dim", { $0.numHeads = 5 }),                     // 192 % 5 != 0
            ("embed_dim", { $0.embedDim = -4 }),
            ("pred_embed_dim", { $0.predNumHeads = 7 }),
            ("depth", { $0.depth = 0 }),
            ("mlp_ratio", { $0.mlpRatio = .nan }),
            ("enc_mask_scale", { $0.encMaskScale = 0.5...1.5 }),
            ("aspect_ratio", { $0.aspectRatio = 0...2 }),
            ("lr", { $0.lr = -1 }),
            ("ema_end", { $0.emaEnd = 1.5 }),
            ("total_steps", { $0.totalSteps = 0 }),
            ("warmup_steps", { $0.warmupSteps = 20_000 }),
            ("min_keep", { $0.minKeep = 196 }),
            ("n_threads", { $0.nThreads = 5000 }),
            ("num_pred_masks", { $0.numPredMasks = 0 }),
            // Valid field by field, but no target block can hold more than min_keep patches:
            // the official sampler would hang (issue #68); validate() catches it.
            ("min_keep", { $0.minKeep = 150 }),
        ]
        for (field, mutate) in cases {
            var c = Config()
            mutate(&c)
            let e = assertThrows(-1, field) { () throws(IJEPAError) in try c.validate() }
            XCTAssertTrue(e?.message.contains(field) ?? false, "\(field) not named in: \(e?.message ?? "")")
            assertThrows(-1, "Model(config:) \(field)") { () throws(IJEPAError) in try Model(config: c) }
        }
    }

    /// Encoding never traps, whatever the (unvalidated) values: Int.max is written as 2^63.
    func testEncodingExtremeValuesDoesNotTrap() throws {
        var c = Config()
        c.depth = .max
        c.imageSize = .min
        let data = try JSONEncoder().encode(c)
        XCTAssertTrue(String(decoding: data, as: UTF8.self).contains("\"depth\""))
        XCTAssertThrowsError(try JSONDecoder().decode(Config.self, from: data))   // no Int32 fits
    }

    func testCodableRoundTrip() throws {
        var custom = tinyConfig()
        custom.seed = .max
        custom.totalSteps = 1 << 40
        custom.allowOverlap = true
        custom.aspectRatio = 0.5...2
        custom.mlpRatio = 48.0 / 11.0
        for c in Config.Preset.allCases.map(Config.preset) + [custom] {
            let data = try JSONEncoder().encode(c)
            XCTAssertEqual(try JSONDecoder().decode(Config.self, from: data), c)
        }
        // snake_case keys, the C header's names; ranges as [min, max].
        let json = String(decoding: try JSONEncoder().encode(custom), as: UTF8.self)
        for key in ["\"image_size\"", "\"pred_num_heads\"", "\"enc_mask_scale\"", "\"final_weight_decay\"", "\"n_threads\""] {
            XCTAssertTrue(json.contains(key), key)
        }
        // Partial input keeps the defaults; 64-bit fields may be strings (as in checkpoints).
        let partial = #"{"image_size": 32, "patch_size": 4, "total_steps": "123", "seed": "18446744073709551615", "pred_mask_scale": [0.1, 0.3], "unknown": 1}"#
        let p = try JSONDecoder().decode(Config.self, from: Data(partial.utf8))
        var expected = Config()
        expected.imageSize = 32
        expected.patchSize = 4
        expected.totalSteps = 123
        expected.seed = .max
        expected.predMaskScale = 0.1...0.3
        XCTAssertEqual(p, expected)
        // Malformed ranges and numbers are decoding errors, not traps.
        for bad in [#"{"enc_mask_scale": [1.0, 0.5]}"#, #"{"aspect_ratio": [1.0]}"#, #"{"seed": "-3"}"#, #"{"depth": "x"}"#] {
            XCTAssertThrowsError(try JSONDecoder().decode(Config.self, from: Data(bad.utf8)), bad) {
                XCTAssertTrue($0 is DecodingError, "\(bad): \($0)")
            }
        }
    }

    func testErrorStatusMapping() {
        let all: [(IJEPAError, Int32, String)] = [
            (.invalidArgument("a"), -1, "invalid argument"), (.shape("b"), -2, "shape mismatch"),
            (.outOfMemory("c"), -3, "out of memory"), (.io("d"), -4, "I/O error"),
            (.format("e"), -5, "bad file format"), (.state("f"), -6, "invalid state"),
            (.numeric("g"), -7, "numeric error (NaN or Inf)"), (.internalError("h"), -8, "internal error"),
        ]
        for (e, status, name) in all {
            XCTAssertEqual(e.status, status)
            XCTAssertEqual(e.statusName, name)
            XCTAssertEqual(e.description, e.message)
        }
        XCTAssertFalse(LibraryInfo.version.isEmpty)
    }
}
