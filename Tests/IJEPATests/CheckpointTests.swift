import IJEPA
import XCTest

final class CheckpointTests: XCTestCase {
    func testSaveLoadRoundTripGivesIdenticalParametersAndEncodings() throws {
        let dir = try temporaryDirectory(self)
        let c = tinyConfig()
        let model = try Model(config: c)
        let images = syntheticImages(batch: 2, config: c)
        for _ in 0..<2 { try model.trainStep(images: images, batch: 2) }
        let path = dir + "/weights.safetensors"
        try model.save(to: path)

        let loaded = try Model.load(contentsOf: path)
        XCTAssertEqual(loaded.config, model.config)
        XCTAssertEqual(loaded.parameters(), model.parameters())
        XCTAssertEqual(loaded.targetParameters(), model.targetParameters())
        for e in Model.Encoder.allCases {
            XCTAssertEqual(try loaded.encode(images: images, batch: 2, encoder: e),
                           try model.encode(images: images, batch: 2, encoder: e))
            XCTAssertEqual(try loaded.encodeTokens(images: images, batch: 2, encoder: e),
                           try model.encodeTokens(images: images, batch: 2, encoder: e))
        }
        XCTAssertEqual(loaded.step, 0, "a weights-only file has no training state")
        XCTAssertEqual(try Model.load(contentsOf: path, nThreads: 2).nThreads, 2)

        // loadWeights into an existing model of the same architecture.
        let fresh = try Model(config: tinyConfig(seed: 99))
        XCTAssertNotEqual(fresh.parameters(), model.parameters())
        try fresh.loadWeights(from: path)
        XCTAssertEqual(fresh.parameters(), model.parameters())
        XCTAssertEqual(fresh.targetParameters(), model.targetParameters())

        // A different architecture is a format error and leaves the model unchanged.
        var other = tinyConfig()
        other.depth = 1
        let small = try Model(config: other)
        let before = small.parameters()
        assertThrows(-5, "strict load into another architecture") { () throws(IJEPAError) in try small.loadWeights(from: path) }
        XCTAssertEqual(small.parameters(), before)

        assertThrows(-4, "missing file") { () throws(IJEPAError) in try Model.load(contentsOf: dir + "/nope.safetensors") }
        assertThrows(-1, "empty path") { () throws(IJEPAError) in try model.save(to: "") }
        let garbage = dir + "/garbage.safetensors"
        XCTAssertTrue(FileManager.default.createFile(atPath: garbage, contents: Data("not a checkpoint".utf8)))
        assertThrows(-5, "garbage file") { () throws(IJEPAError) in try Model.load(contentsOf: garbage) }
    }

    func testTrainingStateResumesExactly() throws {
        let dir = try temporaryDirectory(self)
        let c = tinyConfig()
        let a = try Model(config: c)
        let images = syntheticImages(batch: 2, config: c, seed: 5)
        for _ in 0..<2 { try a.trainStep(images: images, batch: 2) }
        try a.setScheduleOverride(weightDecay: 0.1)
        let path = dir + "/state.safetensors"
        try a.save(to: path, trainingState: true)

        let b = try Model.load(contentsOf: path)
        XCTAssertEqual(b.step, 2)
        XCTAssertEqual(b.scheduleOverride, a.scheduleOverride)
        XCTAssertEqual(b.tensors(.adamM), a.tensors(.adamM))
        XCTAssertEqual(b.tensors(.adamV), a.tensors(.adamV))
        for _ in 0..<3 {
            // masks sampled by each model's restored generator
            let sa = try a.trainStep(images: images, batch: 2)
            let sb = try b.trainStep(images: images, batch: 2)
            XCTAssertEqual(sa, sb)
        }
        XCTAssertEqual(b.step, 5)
        XCTAssertEqual(b.parameters(), a.parameters())
        XCTAssertEqual(b.targetParameters(), a.targetParameters())
        XCTAssertEqual(b.tensors(.adamV), a.tensors(.adamV))
    }
}

import Foundation
