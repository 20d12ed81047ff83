/// Separable resampling as PyTorch's F.interpolate and PIL's resize compute it, for position
/// tables (bicubic, with or without antialias) and for decoded images (antialiased bilinear).
/// Weights are computed in float64; each output is Σ_k w[k] · input[index[k]].
public enum ResampleFilter: Sendable {
    /// F.interpolate(mode="bicubic", align_corners=False, antialias=False): the cubic
    /// convolution with A = −0.75 on 4 taps, source index scale·(i + 0.5) − 0.5, border
    /// indices clamped.
    case bicubic
    /// F.interpolate(mode="bicubic", antialias=True), as PIL's BICUBIC: A = −0.5, support 2
    /// widened by the scale when shrinking, weights renormalized over the taps inside the input.
    case bicubicAntialiased
    /// PIL's BILINEAR (= F.interpolate(mode="bilinear", antialias=True)): the triangle filter,
    /// support 1 widened by the scale when shrinking, weights renormalized.
    case bilinearAntialiased
}

/// One axis: output i reads taps inputs index[i·taps + k] with weights weight[i·taps + k].
struct ResampleAxis {
    var taps = 0
    var index: [Int] = []
    var weight: [Double] = []

    init(from n: Int, to m: Int, _ filter: ResampleFilter) {
        let scale = Double(n) / Double(m)
        switch filter {
        case .bicubic:
            let A = -0.75
            func near(_ x: Double) -> Double { ((A + 2) * x - (A + 3)) * x * x + 1 }
            func far(_ x: Double) -> Double { ((A * x - 5 * A) * x + 8 * A) * x - 4 * A }
            taps = 4
            for i in 0..<m {
                let real = scale * (Double(i) + 0.5) - 0.5
                let x0 = Int(real.rounded(.down))
                let t = real - Double(x0)
                let w = [far(t + 1), near(t), near(1 - t), far(2 - t)]
                for k in 0..<4 {
                    index.append(min(max(x0 - 1 + k, 0), n - 1))
                    weight.append(w[k])
                }
            }
        case .bicubicAntialiased, .bilinearAntialiased:
            let cubic = filter == .bicubicAntialiased
            let filterScale = max(scale, 1)
            let support = (cubic ? 2.0 : 1.0) * filterScale
            func f(_ x: Double) -> Double {
                let a = abs(x)
                if !cubic { return max(0, 1 - a) }
                let A = -0.5
                if a < 1 { return ((A + 2) * a - (A + 3)) * a * a + 1 }
                if a < 2 { return (((a - 5) * a + 8) * a - 4) * A }
                return 0
            }
            taps = Int((support * 2).rounded(.up)) + 1
            for i in 0..<m {
                let center = scale * (Double(i) + 0.5)
                let lo = max(Int(center - support + 0.5), 0)
                let hi = min(Int(center + support + 0.5), n)
                var w = [Double](repeating: 0, count: taps)
                var total = 0.0
                for j in lo..<max(lo, hi) where j - lo < taps {
                    w[j - lo] = f((Double(j) - center + 0.5) / filterScale)
                    total += w[j - lo]
                }
                for k in 0..<taps {
                    index.append(min(lo + k, n - 1))
                    weight.append(total != 0 ? w[k] / total : 0)
                }
            }
        }
    }
}

/// Bytes of scratch a resize of an [inH, inW, C] grid to [outH, outW, C] needs (the width-resampled
/// rows in float64 and both axes' taps), so callers can refuse what cannot fit instead of
/// failing an allocation.
func resampleScratchBytes(inH: Int, inW: Int, channels C: Int, outH: Int, outW: Int, _ f: ResampleFilter) -> Double {
    8 * Double(inH) * Double(outW) * Double(C) + axisBytes(inW, outW, f) + axisBytes(inH, outH, f)
}

/// Bytes of a ResampleAxis from n to m samples (an index and a weight per tap).
func axisBytes(_ n: Int, _ m: Int, _ f: ResampleFilter) -> Double {
    let support = (f == .bicubicAntialiased ? 2.0 : 1.0) * max(Double(n) / Double(m), 1)
    let taps = f == .bicubic ? 4.0 : (2 * support).rounded(.up) + 1
    return 16 * taps * Double(m)
}

/// Throws .outOfMemory unless `bytes` of scratch fit in half the memory available.
func checkScratch(_ bytes: Double, _ what: String) throws(IJEPAError) {
    if bytes > Exec.availableMemory * 0.5 {
        throw .outOfMemory("\(what) needs about \(Int(bytes / 1_048_576)) MiB of scratch, more than is available")
    }
}

/// Resizes a [inH, inW, C] grid of C-vectors (a position table) to [outH, outW, C]: along the
/// width, then the height, in float64.
public func resampleGrid(_ src: UnsafePointer<Float>, inH: Int, inW: Int, channels C: Int,
                         to dst: UnsafeMutablePointer<Float>, outH: Int, outW: Int, _ filter: ResampleFilter) {
    let ax = ResampleAxis(from: inW, to: outW, filter), ay = ResampleAxis(from: inH, to: outH, filter)
    var rows = [Double](repeating: 0, count: inH * outW * C)   // width resampled
    for y in 0..<inH {
        for x in 0..<outW {
            let o = (y * outW + x) * C
            for k in 0..<ax.taps {
                let w = ax.weight[x * ax.taps + k]
                if w == 0 { continue }
                let s = src + (y * inW + ax.index[x * ax.taps + k]) * C
                for c in 0..<C { rows[o + c] += w * Double(s[c]) }
            }
        }
    }
    var acc = [Double](repeating: 0, count: C)
    for y in 0..<outH {
        for x in 0..<outW {
            for c in 0..<C { acc[c] = 0 }
            for k in 0..<ay.taps {
                let w = ay.weight[y * ay.taps + k]
                if w == 0 { continue }
                let o = (ay.index[y * ay.taps + k] * outW + x) * C
                for c in 0..<C { acc[c] += w * rows[o + c] }
            }
            let d = dst + (y * outW + x) * C
            for c in 0..<C { d[c] = Float(acc[c]) }
        }
    }
}

/// Preprocessing of a decoded image as torchvision's Resize(resize) + CenterCrop(crop) +
/// ToTensor + Normalize(mean, std) on a PIL image.
public struct Preprocess: Sendable, Equatable {
    /// Shorter side after the resize (0: no resize), then a centered crop × crop square.
    public var resize: Int
    public var crop: Int
    public var mean: (Float, Float, Float)
    public var std: (Float, Float, Float)

    /// The ImageNet evaluation transform for a model of crop × crop pixels: resize crop·8/7.
    public init(crop: Int) {
        self.crop = crop
        resize = crop * 8 / 7
        mean = (0.485, 0.456, 0.406)
        std = (0.229, 0.224, 0.225)
    }

    public static func == (a: Preprocess, b: Preprocess) -> Bool {
        a.resize == b.resize && a.crop == b.crop && a.mean == b.mean && a.std == b.std
    }

    /// The size after the resize: the shorter side becomes `resize`, the longer one
    /// int(resize · long / short) (torchvision's truncation).
    public func resizedSize(height h: Int, width w: Int) -> (height: Int, width: Int) {
        if resize == 0 { return (h, w) }
        let short = min(h, w), long = max(h, w)
        let newLong = Int(Double(resize) * Double(long) / Double(short))
        return h <= w ? (resize, newLong) : (newLong, resize)
    }

    public func validate(height h: Int, width w: Int) throws(IJEPAError) {
        if h < 1 || w < 1 || h > 1 << 16 || w > 1 << 16 {
            throw .invalidArgument("image size \(h)x\(w) must be in 1...65536 on each side")
        }
        if resize < 0 || resize > 1 << 16 { throw .invalidArgument("resize must be in 0...65536, got \(resize)") }
        if crop < 1 || crop > 1 << 16 { throw .invalidArgument("crop must be in 1...65536, got \(crop)") }
        let (rh, rw) = resizedSize(height: h, width: w)
        if crop > rh || crop > rw {
            throw .invalidArgument("crop \(crop) is larger than the \(rh)x\(rw) image" + (resize == 0 ? "" : " after resizing to \(resize)"))
        }
        // the crop's columns at every input row (float64), and the taps of both axes
        try checkScratch(8 * Double(h) * Double(crop) * 3 + axisBytes(w, rw, .bilinearAntialiased)
                         + axisBytes(h, rh, .bilinearAntialiased), "resizing a \(h)x\(w) image")
        for (name, v) in [("mean", [mean.0, mean.1, mean.2]), ("std", [std.0, std.1, std.2])] {
            if v.contains(where: { !$0.isFinite }) { throw .invalidArgument("\(name) must be finite") }
        }
        if std.0 <= 0 || std.1 <= 0 || std.2 <= 0 { throw .invalidArgument("std must be > 0") }
    }

    /// rgb: height × width × 3 uint8, rows contiguous; out: 3 × crop × crop floats (CHW).
    /// The resize is PIL's antialiased bilinear in float64, width first, without PIL's rounding
    /// to uint8 between the passes.
    public func apply(_ rgb: UnsafePointer<UInt8>, height h: Int, width w: Int, into out: UnsafeMutablePointer<Float>) throws(IJEPAError) {
        try validate(height: h, width: w)
        let (rh, rw) = resizedSize(height: h, width: w)
        let top = Int((Double(rh - crop) / 2).rounded(.toNearestOrEven)), left = Int((Double(rw - crop) / 2).rounded(.toNearestOrEven))
        let ax = ResampleAxis(from: w, to: rw, .bilinearAntialiased), ay = ResampleAxis(from: h, to: rh, .bilinearAntialiased)
        let identityW = rw == w, identityH = rh == h
        // the crop's columns at every input row (width pass), then its rows (height pass)
        var rows = [Double](repeating: 0, count: h * crop * 3)
        for y in 0..<h {
            for x in 0..<crop {
                let o = (y * crop + x) * 3
                if identityW {
                    let s = rgb + (y * w + left + x) * 3
                    for c in 0..<3 { rows[o + c] = Double(s[c]) }
                    continue
                }
                let xi = left + x
                for k in 0..<ax.taps {
                    let wt = ax.weight[xi * ax.taps + k]
                    if wt == 0 { continue }
                    let s = rgb + (y * w + ax.index[xi * ax.taps + k]) * 3
                    for c in 0..<3 { rows[o + c] += wt * Double(s[c]) }
                }
            }
        }
        let m = [Double(mean.0), Double(mean.1), Double(mean.2)], sd = [Double(std.0), Double(std.1), Double(std.2)]
        let plane = crop * crop
        for y in 0..<crop {
            let yi = top + y
            for x in 0..<crop {
                var acc = (0.0, 0.0, 0.0)
                if identityH {
                    let o = (yi * crop + x) * 3
                    acc = (rows[o], rows[o + 1], rows[o + 2])
                } else {
                    for k in 0..<ay.taps {
                        let wt = ay.weight[yi * ay.taps + k]
                        if wt == 0 { continue }
                        let o = (ay.index[yi * ay.taps + k] * crop + x) * 3
                        acc.0 += wt * rows[o]; acc.1 += wt * rows[o + 1]; acc.2 += wt * rows[o + 2]
                    }
                }
                let i = y * crop + x
                out[i] = Float((acc.0 / 255 - m[0]) / sd[0])
                out[plane + i] = Float((acc.1 / 255 - m[1]) / sd[1])
                out[2 * plane + i] = Float((acc.2 / 255 - m[2]) / sd[2])
            }
        }
    }
}
