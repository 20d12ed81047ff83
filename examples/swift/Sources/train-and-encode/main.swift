// Trains a tiny I-JEPA for a few steps on synthetic images, then encodes them: the whole
// Swift API in one page. Run from the repository root:
//
//   swift run --package-path examples/swift -c release train-and-encode [steps]

import Glibc  // exit
import IJEPA

/// Synthetic, already-normalized images: smooth random blobs, so the encoder has structure to
/// predict (pure noise works too, but says less).
func syntheticBatch(_ batch: Int, _ c: Config, seed: inout UInt64) -> [Float] {
    func next() -> Float {   // xorshift64*, uniform in [0, 1)
        seed ^= seed >> 12; seed ^= seed << 25; seed ^= seed >> 27
        return Float((seed &* 0x2545_F491_4F6C_DD1D) >> 40) / Float(1 << 24)
    }
    let s = c.imageSize
    var images = [Float](repeating: 0, count: batch * c.floatsPerImage)
    for b in 0..<batch {
        for _ in 0..<3 {
            let (cy, cx, r) = (next() * Float(s), next() * Float(s), 2 + next() * Float(s) / 3)
            let amplitude = next() * 2 - 1
            for ch in 0..<c.inChans {
                let tint = 0.5 + next()
                for y in 0..<s {
                    for x in 0..<s {
                        let d2 = (Float(y) - cy) * (Float(y) - cy) + (Float(x) - cx) * (Float(x) - cx)
                        images[((b * c.inChans + ch) * s + y) * s + x] += amplitude * tint * max(0, 1 - d2 / (r * r))
                    }
                }
            }
        }
    }
    return images
}

func run() throws(IJEPAError) {
    let steps = CommandLine.arguments.dropFirst().first.flatMap { Int($0) } ?? 5
    let batch = 8

    // The "tiny32" preset (32 px RGB, patch 4), made smaller so that this runs in seconds.
    var config = Config.preset(.tiny32)
    config.depth = 4
    config.predDepth = 2
    config.warmupSteps = 2
    config.totalSteps = Int64(max(steps, 2))
    config.seed = 42
    try config.validate()

    let model = try Model(config: config)
    print("ijepa \(LibraryInfo.version): \(model)")
    print("  \(model.numPatches) patches of \(config.patchSize)x\(config.patchSize), embed dim \(model.embedDim), "
          + "\(model.parameterCount) trainable floats in \(model.tensorInfos().count) tensors, \(model.nThreads) threads")

    var seed: UInt64 = 0x1234_5678
    for _ in 0..<steps {
        let images = syntheticBatch(batch, config, seed: &seed)
        let s = try model.trainStep(images: images, batch: batch)   // masks sampled by the model
        let loss = String(describing: s.loss)
        print("step \(s.step): loss \(loss)  lr \(s.lr)  wd \(s.weightDecay)  ema \(s.emaMomentum)  |grad| \(s.gradNorm)")
    }

    // Features from the target encoder (the one the paper evaluates).
    let images = syntheticBatch(4, config, seed: &seed)
    let pooled = try model.encode(images: images, batch: 4)
    let tokens = try model.encodeTokens(images: images, batch: 4)
    print("pooled features: \(pooled.count) floats = [4][\(model.embedDim)]")
    print("token features:  \(tokens.count) floats = [4][\(model.numPatches)][\(model.embedDim)]")
    let head = pooled.prefix(4).map { String(describing: $0) }.joined(separator: ", ")
    print("image 0, first features: [\(head), ...]")

    // Errors are typed and never trap: a wrong image count is a shape error.
    do throws(IJEPAError) {
        _ = try model.encode(images: Array(images.dropLast()), batch: 4)
    } catch {
        print("wrong image count -> \(error.statusName) (status \(error.status)): \(error.message)")
    }
}

do throws(IJEPAError) {
    try run()
} catch {
    print("error: \(error.statusName): \(error.message)")
    exit(1)
}
