import IJEPA
import Synchronization
import XCTest

final class LoggingTests: XCTestCase {
    /// A config where the context block can almost never avoid the targets: the sampler relaxes
    /// its constraint and says so, as the official collator does.
    func testMaskSamplerRelaxationIsLogged() throws {
        var c = tinyConfig()
        c.imageSize = 16                 // 4x4 patches: context 3x3 (official placement), targets 2x2
        c.numPredMasks = 8
        c.predMaskScale = 0.25...0.25
        c.aspectRatio = 1...1
        c.encMaskScale = 1...1
        c.minKeep = 0
        let model = try Model(config: c)

        let messages = Mutex<[(Logging.Level, String)]>([])
        Logging.setHandler { level, message in messages.withLock { $0.append((level, message)) } }
        defer { Logging.setHandler(nil) }
        for _ in 0..<5 { _ = try model.sampleMasks(batch: 4) }
        let got = messages.withLock { $0 }
        XCTAssertFalse(got.isEmpty, "expected relaxation warnings")
        XCTAssertTrue(got.allSatisfy { $0.0 == .warn && $0.1.contains("Valid mask not found") }, "\(got.prefix(3))")

        Logging.setHandler(nil)
        let count = got.count
        for _ in 0..<5 { _ = try model.sampleMasks(batch: 4) }
        XCTAssertEqual(messages.withLock { $0.count }, count, "no handler: silent")
        XCTAssertLessThan(Logging.Level.info, .warn)
    }
}
