import XCTest
@testable import IJEPACore

/// The official schedules on the ViT-H/14 IN-1k config: 16 GPUs × 128,
/// ipe 625, 300 epochs → T = 187,500 iterations, warmup 40 epochs = 25,000.
final class ScheduleTests: XCTestCase {
    var config: ModelConfig {
        var c = ModelConfig()
        c.startLR = 2e-4; c.lr = 1e-3; c.finalLR = 1e-6
        c.weightDecay = 0.04; c.finalWeightDecay = 0.4
        c.emaStart = 0.996; c.emaEnd = 1.0
        c.warmupSteps = 25_000; c.totalSteps = 187_500
        return c
    }

    func testLearningRateTable() {
        let c = config
        XCTAssertEqual(Schedules.learningRate(step: 1, c), 2.00032e-4, accuracy: 1e-10)
        XCTAssertEqual(Schedules.learningRate(step: 25_000, c), 1e-3, accuracy: 1e-9)
        XCTAssertEqual(Schedules.learningRate(step: 93_750, c), 6.20e-4, accuracy: 5e-7)
        XCTAssertEqual(Schedules.learningRate(step: 187_500, c), 1e-6, accuracy: 1e-9)
        // warmup is linear, then monotone decreasing
        XCTAssertEqual(Schedules.learningRate(step: 12_500, c), 6e-4, accuracy: 1e-8)
        XCTAssertGreaterThan(Schedules.learningRate(step: 50_000, c), Schedules.learningRate(step: 50_001, c))
    }

    func testWeightDecayTable() {
        let c = config
        XCTAssertEqual(Schedules.weightDecay(step: 1, c), 0.04, accuracy: 1e-6)
        XCTAssertEqual(Schedules.weightDecay(step: 25_000, c), 0.0556, accuracy: 5e-5)
        XCTAssertEqual(Schedules.weightDecay(step: 93_750, c), 0.22, accuracy: 1e-6)
        XCTAssertEqual(Schedules.weightDecay(step: 187_500, c), 0.40, accuracy: 1e-7)
    }

    // The config holds float32 values (as ijepa_config does), so 0.996 is 0.99599999189…; the
    // step is applied in float32 (as torch's mul_ with a Python float does).
    func testEMAMomentumTable() {
        let c = config
        XCTAssertEqual(Float(Schedules.momentum(step: 1, c)), 0.996)                // exactly, in float32
        XCTAssertEqual(Schedules.momentum(step: 187_500, c), 0.99999998, accuracy: 5e-9)
        XCTAssertEqual(Schedules.momentum(step: 2, c) - Schedules.momentum(step: 1, c), 0.004 / 187_500, accuracy: 1e-13)
        XCTAssertEqual(Schedules.momentum(step: 400_000, c), 1.0)
    }

    /// The model's optimizer step uses schedule value `step` (1-based) and honours overrides.
    func testModelStepUsesScheduleAndOverrides() throws {
        var c = ModelGradientTests.tinyConfig()
        c.warmupSteps = 10; c.totalSteps = 100
        let m = try Model(config: c)
        let B = 2
        var rng = RNG(seed: 3)
        let images = randomArray(B * c.inChans * c.imageSize * c.imageSize, &rng)
        let masks = ModelGradientTests.fixedMasks(batch: B, nenc: 1, npred: 2)
        try images.withUnsafeBufferPointer { img in
            let s1 = try m.trainStep(images: img.baseAddress!, batch: B, masks: masks)
            XCTAssertEqual(s1.step, 1)
            XCTAssertEqual(Double(s1.lr), Schedules.learningRate(step: 1, c), accuracy: 1e-9)
            XCTAssertEqual(Double(s1.weightDecay), Schedules.weightDecay(step: 1, c), accuracy: 1e-7)
            XCTAssertEqual(Double(s1.emaMomentum), Schedules.momentum(step: 1, c), accuracy: 1e-7)
            m.overrideLR = 0.5; m.overrideWD = 0.25; m.overrideEMA = 0.125
            let s2 = try m.trainStep(images: img.baseAddress!, batch: B, masks: masks)
            XCTAssertEqual(s2.step, 2)
            XCTAssertEqual(s2.lr, 0.5); XCTAssertEqual(s2.weightDecay, 0.25); XCTAssertEqual(s2.emaMomentum, 0.125)
        }
        XCTAssertThrowsError(try m.optimizerStep()) { e in
            XCTAssertEqual((e as? IJEPAError)?.status, -6, "a second optimizer step without gradients is a state error")
        }
    }
}
