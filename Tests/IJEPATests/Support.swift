import Foundation
import IJEPA
import XCTest

/// A model small enough for debug builds: 24 px RGB, patch 4 (6x6 = 36 patches), encoder
/// 16 x 2, predictor 8 x 1, official mask recipe with min_keep 2.
func tinyConfig(seed: UInt64 = 7) -> Config {
    var c = Config()
    c.imageSize = 24
    c.patchSize = 4
    c.inChans = 3
    c.embedDim = 16
    c.depth = 2
    c.numHeads = 2
    c.predEmbedDim = 8
    c.predDepth = 1
    c.predNumHeads = 2
    c.minKeep = 2
    c.warmupSteps = 2
    c.totalSteps = 20
    c.nThreads = 1
    c.seed = seed
    return c
}

/// Deterministic pseudo-random images in [-1, 1] (xorshift64*).
func syntheticImages(batch: Int, config: Config, seed: UInt64 = 1) -> [Float] {
    var s = seed &* 0x9E37_79B9_7F4A_7C15 | 1
    return (0..<(batch * config.floatsPerImage)).map { _ in
        s ^= s >> 12; s ^= s << 25; s ^= s >> 27
        let u = (s &* 0x2545_F491_4F6C_DD1D) >> 40          // 24 bits
        return Float(u) / Float(1 << 23) - 1
    }
}

/// Runs `body`, which must throw an IJEPAError with the given C status; returns the error.
@discardableResult
func assertThrows<T>(_ status: Int32, _ what: String, file: StaticString = #filePath, line: UInt = #line,
                     _ body: () throws(IJEPAError) -> T) -> IJEPAError? {
    do throws(IJEPAError) {
        _ = try body()
        XCTFail("\(what): expected status \(status), nothing was thrown", file: file, line: line)
        return nil
    } catch {
        XCTAssertEqual(error.status, status, "\(what): \(error.statusName): \(error.message)", file: file, line: line)
        return error
    }
}

/// A fresh temporary directory, removed at the end of the test.
func temporaryDirectory(_ test: XCTestCase) throws -> String {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("ijepa-swift-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url.path
}

func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count)
    var m: Float = 0
    for i in a.indices { m = max(m, abs(a[i] - b[i])) }
    return m
}
