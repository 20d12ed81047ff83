import XCTest
@testable import IJEPACore

/// RandomResizedCrop: crop sampling with torchvision's rules, resize against PyTorch's
/// F.interpolate(bilinear, align_corners=False, antialias=False) fixture (|a−b| ≤ 1e-5 + 1e-5|b|).
final class AugmentTests: XCTestCase {
    func testBilinearResizedCropsMatchPyTorch() throws {
        let f = try SafetensorsFile(path: fixturesDirectory.appendingPathComponent("augment.safetensors").path)
        let imgs = try f.floats("images")
        let boxes = try f.ints("boxes")
        let (B, C, H, W) = (2, 3, 28, 28)
        for S in [32, 20] {
            let ref = try f.floats("crops\(S)")
            for k in 0..<(boxes.count / 4) {
                let box = CropBox(i: Int(boxes[4 * k]), j: Int(boxes[4 * k + 1]), h: Int(boxes[4 * k + 2]), w: Int(boxes[4 * k + 3]))
                var out = [Float](repeating: 0, count: B * C * S * S)
                imgs.withUnsafeBufferPointer { src in
                    out.withUnsafeMutableBufferPointer { dst in
                        for b in 0..<B {
                            resizedCrop(src.baseAddress! + b * C * H * W, channels: C, height: H, width: W, box: box,
                                        outH: S, outW: S, dst.baseAddress! + b * C * S * S)
                        }
                    }
                }
                let n = B * C * S * S
                assertClose(out, Array(ref[(k * n)..<((k + 1) * n)]), atol: 1e-5, rtol: 1e-5, "crop \(box) → \(S)")
            }
        }
        let ref = try f.floats("resize_24x36")
        var out = [Float](repeating: 0, count: B * C * 24 * 36)
        imgs.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for b in 0..<B {
                    resizedCrop(src.baseAddress! + b * C * H * W, channels: C, height: H, width: W,
                                box: CropBox(i: 0, j: 0, h: H, w: W), outH: 24, outW: 36, dst.baseAddress! + b * C * 24 * 36)
                }
            }
        }
        assertClose(out, ref, atol: 1e-5, rtol: 1e-5, "resize 28x28 → 24x36")
    }

    func testCropBoxDistributionFollowsTorchvision() {
        var rng = RNG(seed: 3)
        let (H, W) = (28, 28)
        var areas: [Double] = [], logRatios: [Double] = []
        for _ in 0..<4000 {
            let b = randomResizedCropBox(height: H, width: W, scale: (0.3, 1.0), ratio: (0.75, 4.0 / 3.0), rng: &rng)
            XCTAssert(b.h >= 1 && b.w >= 1 && b.i >= 0 && b.j >= 0 && b.i + b.h <= H && b.j + b.w <= W, "\(b)")
            areas.append(Double(b.h * b.w) / Double(H * W))
            logRatios.append(log(Double(b.w) / Double(b.h)))
        }
        let meanArea = areas.reduce(0, +) / Double(areas.count)
        // uniform scale in [0.3, 1] gives mean ≈ 0.65 before rounding and rejection of too-wide crops
        XCTAssertEqual(meanArea, 0.63, accuracy: 0.04)
        XCTAssertGreaterThan(areas.min()!, 0.25)
        XCTAssertLessThan(logRatios.max()!, log(4.0 / 3.0) + 0.2)
        XCTAssertGreaterThan(logRatios.min()!, log(0.75) - 0.2)
        // positions spread over the image: some crops touch the last row
        var rng2 = RNG(seed: 4)
        let touches = (0..<500).map { _ in randomResizedCropBox(height: H, width: W, scale: (0.3, 0.5), ratio: (1, 1), rng: &rng2) }
            .filter { $0.i + $0.h == H }.count
        XCTAssertGreaterThan(touches, 10)
    }

    func testFallbackIsTheCentreCrop() {
        var rng = RNG(seed: 1)
        // ratio range far from any feasible crop of a 10x40 image with scale 1: falls back
        let b = randomResizedCropBox(height: 10, width: 40, scale: (1, 1), ratio: (0.5, 1.0), rng: &rng)
        // in_ratio 4 > max ratio 1 → h = 10, w = round(10 · 1) = 10, centred
        XCTAssertEqual(b, CropBox(i: 0, j: 15, h: 10, w: 10))
        let c = randomResizedCropBox(height: 40, width: 10, scale: (1, 1), ratio: (2, 3), rng: &rng)
        // in_ratio 0.25 < min ratio 2 → w = 10, h = round(10 / 2) = 5
        XCTAssertEqual(c, CropBox(i: 17, j: 0, h: 5, w: 10))
    }

    func testSeededAndPerImage() {
        let (B, C, H, W, S) = (4, 1, 12, 12, 8)
        var rng = RNG(seed: 9)
        let img = randomArray(B * C * H * W, &rng)
        func run(_ seed: UInt64) -> [Float] {
            var r = RNG(seed: seed)
            var out = [Float](repeating: 0, count: B * C * S * S)
            img.withUnsafeBufferPointer { src in
                out.withUnsafeMutableBufferPointer { dst in
                    randomResizedCrop(src.baseAddress!, batch: B, channels: C, height: H, width: W, size: S,
                                      scale: (0.3, 1), ratio: (0.75, 4.0 / 3.0), rng: &r, dst.baseAddress!)
                }
            }
            return out
        }
        XCTAssertEqual(run(5), run(5))
        XCTAssertNotEqual(run(5), run(6))
    }
}
