import Glibc

// Data augmentation that C users cannot get from torchvision: RandomResizedCrop with
// torchvision's semantics (area scale uniform, log-uniform aspect ratio, 10 attempts, then the
// centre-crop fallback) and bilinear resizing as F.interpolate(mode="bilinear",
// align_corners=False, antialias=False). Images are float32 [C, H, W] planes.

/// A crop: top row i, left column j, height h, width w.
public struct CropBox: Equatable, Sendable {
    public var i: Int, j: Int, h: Int, w: Int
    public init(i: Int, j: Int, h: Int, w: Int) { self.i = i; self.j = j; self.h = h; self.w = w }
}

/// Python's round(): half to even.
@inline(__always)
func roundHalfEven(_ x: Double) -> Int { Int(x.rounded(.toNearestOrEven)) }

/// torchvision.transforms.RandomResizedCrop.get_params.
public func randomResizedCropBox(height: Int, width: Int, scale: (Double, Double), ratio: (Double, Double),
                                 rng: inout RNG) -> CropBox {
    let area = Double(height * width)
    let logLo = log(ratio.0), logHi = log(ratio.1)
    for _ in 0..<10 {
        let targetArea = area * (scale.0 + (scale.1 - scale.0) * rng.uniform())
        let aspect = exp(logLo + (logHi - logLo) * rng.uniform())
        let w = roundHalfEven((targetArea * aspect).squareRoot())
        let h = roundHalfEven((targetArea / aspect).squareRoot())
        if w > 0 && w <= width && h > 0 && h <= height {
            let i = rng.randint(0, height - h + 1)
            let j = rng.randint(0, width - w + 1)
            return CropBox(i: i, j: j, h: h, w: w)
        }
    }
    let inRatio = Double(width) / Double(height)
    var w = width, h = height
    if inRatio < min(ratio.0, ratio.1) {
        h = roundHalfEven(Double(w) / min(ratio.0, ratio.1))
    } else if inRatio > max(ratio.0, ratio.1) {
        w = roundHalfEven(Double(h) * max(ratio.0, ratio.1))
    }
    return CropBox(i: (height - h) / 2, j: (width - w) / 2, h: h, w: w)
}

/// Source index and weights along one axis, as PyTorch's upsample_bilinear2d (align_corners=False).
@inline(__always)
func bilinearAxis(_ dst: Int, inSize: Int, outSize: Int) -> (Int, Int, Float, Float) {
    let scale = Float(inSize) / Float(outSize)
    var src = scale * (Float(dst) + 0.5) - 0.5
    if src < 0 { src = 0 }
    let i0 = Int(src)
    let step = i0 < inSize - 1 ? 1 : 0
    let l1 = src - Float(i0)
    return (i0, i0 + step, 1 - l1, l1)
}

/// Crops `box` out of each of C planes of src (stride H×W, row stride W) and resizes it
/// bilinearly to outH × outW into dst.
public func resizedCrop(_ src: UnsafePointer<Float>, channels C: Int, height H: Int, width W: Int,
                        box: CropBox, outH: Int, outW: Int, _ dst: UnsafeMutablePointer<Float>) {
    for oy in 0..<outH {
        let (y0, y1, wy0, wy1) = bilinearAxis(oy, inSize: box.h, outSize: outH)
        for ox in 0..<outW {
            let (x0, x1, wx0, wx1) = bilinearAxis(ox, inSize: box.w, outSize: outW)
            for c in 0..<C {
                let p = src + c * H * W
                let r0 = p + (box.i + y0) * W + box.j, r1 = p + (box.i + y1) * W + box.j
                dst[(c * outH + oy) * outW + ox] = wy0 * (wx0 * r0[x0] + wx1 * r0[x1]) + wy1 * (wx0 * r1[x0] + wx1 * r1[x1])
            }
        }
    }
}

/// RandomResizedCrop(size, scale, ratio) on every image of a batch (a fresh crop per image,
/// drawn from rng in image order), bilinear, no antialias. images [B,C,H,W] → out [B,C,S,S].
public func randomResizedCrop(_ images: UnsafePointer<Float>, batch B: Int, channels C: Int, height H: Int,
                              width W: Int, size S: Int, scale: (Double, Double), ratio: (Double, Double),
                              rng: inout RNG, _ out: UnsafeMutablePointer<Float>) {
    for b in 0..<B {
        let box = randomResizedCropBox(height: H, width: W, scale: scale, ratio: ratio, rng: &rng)
        resizedCrop(images + b * C * H * W, channels: C, height: H, width: W, box: box, outH: S, outW: S,
                    out + b * C * S * S)
    }
}

/// Checks the arguments shared by the augmentation entry points.
/// `outNames` are the caller's argument names for the output height and width.
public func validateAugmentArguments(batch: Int, channels: Int, height: Int, width: Int, outH: Int, outW: Int,
                                     outNames: (String, String) = ("out_size", "out_size")) throws {
    func bad(_ m: String) -> IJEPAError { .invalidArgument(m) }
    do { try Model.checkBatch(batch) } catch { throw bad(error.message) }
    if channels < 1 || channels > 64 { throw bad("channels must be in 1...64, got \(channels)") }
    for (v, n) in [(height, "height"), (width, "width"), (outH, outNames.0), (outW, outNames.1)] where v < 1 || v > 16384 {
        throw bad("\(n) must be in 1...16384, got \(v)")
    }
    let (a, o1) = (batch * channels).multipliedReportingOverflow(by: max(height * width, outH * outW))
    if o1 || a > Int(Int32.max) * 4 { throw IJEPAError.shape("the batch is too large (\(batch) images)") }
}
