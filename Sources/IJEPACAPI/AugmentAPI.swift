import CIJEPA
import IJEPACore

@c @implementation
public func ijepa_random_resized_crop(_ images: UnsafePointer<Float>?, _ batch: Int32, _ channels: Int32,
                                      _ height: Int32, _ width: Int32, _ out_size: Int32,
                                      _ scale_min: Float, _ scale_max: Float, _ ratio_min: Float, _ ratio_max: Float,
                                      _ rng_state: UnsafeMutablePointer<UInt64>?, _ out: UnsafeMutablePointer<Float>?) -> Int32 {
    guarded {
        guard let images else { throw invalid("images is NULL") }
        guard let out else { throw invalid("out is NULL") }
        guard let rng_state else { throw invalid("rng_state is NULL") }
        try validateAugmentArguments(batch: Int(batch), channels: Int(channels), height: Int(height), width: Int(width),
                                     outH: Int(out_size), outW: Int(out_size))
        if !(scale_min > 0 && scale_min <= scale_max && scale_max <= 1) {
            throw invalid("scale must satisfy 0 < scale_min <= scale_max <= 1, got (\(scale_min), \(scale_max))")
        }
        if !(ratio_min > 0 && ratio_min <= ratio_max && ratio_max.isFinite) {
            throw invalid("ratio must satisfy 0 < ratio_min <= ratio_max < inf, got (\(ratio_min), \(ratio_max))")
        }
        var rng = RNG(seed: rng_state.pointee)
        randomResizedCrop(images, batch: Int(batch), channels: Int(channels), height: Int(height), width: Int(width),
                          size: Int(out_size), scale: (Double(scale_min), Double(scale_max)),
                          ratio: (Double(ratio_min), Double(ratio_max)), rng: &rng, out)
        rng_state.pointee = rng.next()
    }
}

@c @implementation
public func ijepa_resize_bilinear(_ images: UnsafePointer<Float>?, _ batch: Int32, _ channels: Int32,
                                  _ height: Int32, _ width: Int32, _ out_height: Int32, _ out_width: Int32,
                                  _ out: UnsafeMutablePointer<Float>?) -> Int32 {
    guarded {
        guard let images else { throw invalid("images is NULL") }
        guard let out else { throw invalid("out is NULL") }
        try validateAugmentArguments(batch: Int(batch), channels: Int(channels), height: Int(height), width: Int(width),
                                     outH: Int(out_height), outW: Int(out_width), outNames: ("out_height", "out_width"))
        let (B, C, H, W) = (Int(batch), Int(channels), Int(height), Int(width))
        let box = CropBox(i: 0, j: 0, h: H, w: W)
        for b in 0..<B {
            resizedCrop(images + b * C * H * W, channels: C, height: H, width: W, box: box,
                        outH: Int(out_height), outW: Int(out_width), out + b * C * Int(out_height) * Int(out_width))
        }
    }
}
