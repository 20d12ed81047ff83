import Glibc

// Multi-block masking: a seeded, reproducible port of the official `MaskCollator`
// (facebookresearch/ijepa src/masks/multiblock.py). The official quirks are kept on
// purpose (block sizes shared by the batch, one random draw for scale and aspect ratio, blocks
// never touching the last patch row/column, the 20-tries relaxation of the overlap constraint,
// truncation of every image's masks to the batch minimum). Two differences:
//   * a block that can never hold more than `min_keep` patches throws instead of looping
//     forever (upstream issue #68);
//   * `ModelConfig.fullGrid` opts into the placement fix of PR #40.

/// Masks for one batch. Patch index n = row*grid + col. Layouts are those of the C ABI:
/// enc is [numEnc][batch][kEnc], pred is [numPred][batch][kPred], row-major, Int32.
///
/// Ragged contexts (`encLen` not nil, [numEnc][batch]): context j of image b is
/// enc[(j*batch + b)*kEnc ..< + encLen[j*batch + b]]; kEnc is the longest context and the rest of
/// each row is padding (ignored; -1 when sampled). `encLen == nil` means every context has kEnc.
public struct MaskSet: Equatable, Sendable {
    public var batch: Int, numEnc: Int, kEnc: Int, numPred: Int, kPred: Int
    public var enc: [Int32]
    public var pred: [Int32]
    public var encLen: [Int32]?

    public init(batch: Int, numEnc: Int, kEnc: Int, numPred: Int, kPred: Int, enc: [Int32], pred: [Int32],
                encLen: [Int32]? = nil) {
        self.batch = batch
        self.numEnc = numEnc
        self.kEnc = kEnc
        self.numPred = numPred
        self.kPred = kPred
        self.enc = enc
        self.pred = pred
        self.encLen = encLen
    }

    /// The masks of images first..<first+count (every mask's rows of those images), as a
    /// micro-batch or a data-parallel shard of this batch takes them; lengths keep kEnc/kPred.
    public func rows(_ first: Int, _ count: Int) -> MaskSet {
        precondition(first >= 0 && count >= 1 && first + count <= batch, "rows \(first)..<\(first + count) of \(batch)")
        var e: [Int32] = [], p: [Int32] = [], l: [Int32]? = encLen.map { _ in [] }
        e.reserveCapacity(numEnc * count * kEnc); p.reserveCapacity(numPred * count * kPred)
        for j in 0..<numEnc {
            e.append(contentsOf: enc[((j * batch + first) * kEnc)..<((j * batch + first + count) * kEnc)])
            if let encLen { l!.append(contentsOf: encLen[(j * batch + first)..<(j * batch + first + count)]) }
        }
        for j in 0..<numPred {
            p.append(contentsOf: pred[((j * batch + first) * kPred)..<((j * batch + first + count) * kPred)])
        }
        return MaskSet(batch: count, numEnc: numEnc, kEnc: kEnc, numPred: numPred, kPred: kPred, enc: e, pred: p, encLen: l)
    }

    /// Length of context row `row` = j*batch + b.
    @inline(__always) public func contextLength(_ row: Int) -> Int { encLen.map { Int($0[row]) } ?? kEnc }

    /// Throws IJEPAError.shape / .invalidArgument naming the problem if the arrays have the wrong
    /// counts, any index is outside 0..<numPatches, or an index repeats within one mask row.
    ///
    /// - `.shape`: a dimension is < 1, K exceeds numPatches, an array's count is not the
    ///   product of its dimensions, or a context length is outside 1...kEnc.
    /// - `.invalidArgument`: numPatches < 1, an index out of range, or a repeated index.
    /// Indices need not be sorted (the engine gathers them in the given order).
    public func validate(numPatches: Int) throws {
        var seen: [UInt32] = []
        try validate(numPatches: numPatches, seen: &seen)
    }

    /// validate(numPatches:) with a caller-kept scratch table (so a steady training step does
    /// not allocate); `seen` is resized and cleared as needed.
    public func validate(numPatches: Int, seen: inout [UInt32]) throws {
        guard numPatches >= 1 else {
            throw IJEPAError.invalidArgument("masks: numPatches must be >= 1, got \(numPatches)")
        }
        // (no array literals of names here: they would allocate on every step)
        func positive(_ value: Int, _ name: StaticString) throws {
            if value < 1 { throw IJEPAError.shape("masks: \(name) must be >= 1, got \(value)") }
        }
        try positive(batch, "batch"); try positive(numEnc, "numEnc"); try positive(kEnc, "kEnc")
        try positive(numPred, "numPred"); try positive(kPred, "kPred")
        func fits(_ k: Int, _ name: StaticString) throws {
            if k > numPatches { throw IJEPAError.shape("masks: \(name) (\(k)) exceeds the number of patches (\(numPatches))") }
        }
        try fits(kEnc, "kEnc"); try fits(kPred, "kPred")
        try Self.checkCount(enc.count, numEnc, "enc", "numEnc", kEnc, "kEnc", batch: batch)
        try Self.checkCount(pred.count, numPred, "pred", "numPred", kPred, "kPred", batch: batch)
        if let encLen {
            try Self.checkCount(encLen.count, numEnc, "enc_len", "numEnc", 1, "1", batch: batch)
            for (i, l) in encLen.enumerated() where l < 1 || Int(l) > kEnc {
                throw IJEPAError.shape("masks: enc_len[\(i / batch)][\(i % batch)] = \(l) is outside 1...k_enc_max (\(kEnc))")
            }
        }

        // Generation-stamped "seen" table: cleared once, not between rows.
        seen.removeAll(keepingCapacity: true)
        seen.append(contentsOf: repeatElement(0, count: numPatches))
        var stamp: UInt32 = 0
        try Self.checkRows(enc, "enc", masks: numEnc, batch: batch, k: kEnc, lengths: encLen,
                           numPatches: numPatches, seen: &seen, stamp: &stamp)
        try Self.checkRows(pred, "pred", masks: numPred, batch: batch, k: kPred, lengths: nil,
                           numPatches: numPatches, seen: &seen, stamp: &stamp)
    }

    private static func checkCount(_ count: Int, _ masks: Int, _ name: String, _ masksName: String,
                                   _ k: Int, _ kName: String, batch: Int) throws {
        let (mb, o1) = masks.multipliedReportingOverflow(by: batch)
        let (expected, o2) = mb.multipliedReportingOverflow(by: k)
        if o1 || o2 || expected != count {
            throw IJEPAError.shape(
                "masks: \(name) has \(count) indices, expected \(masksName)*batch*\(kName) = "
                    + "\(masks)*\(batch)*\(k)" + (o1 || o2 ? " (overflows)" : " = \(expected)"))
        }
    }

    private static func checkRows(_ a: [Int32], _ name: String, masks: Int, batch: Int, k: Int, lengths: [Int32]?,
                                  numPatches: Int, seen: inout [UInt32], stamp: inout UInt32) throws {
        for m in 0..<masks {
            for b in 0..<batch {
                stamp &+= 1
                if stamp == 0 {  // wrapped: start over with a clean table
                    for i in seen.indices { seen[i] = 0 }
                    stamp = 1
                }
                let base = (m * batch + b) * k
                for i in 0..<(lengths.map { Int($0[m * batch + b]) } ?? k) {
                    let v = Int(a[base + i])
                    guard v >= 0 && v < numPatches else {
                        throw IJEPAError.invalidArgument(
                            "masks: \(name)[\(m)][\(b)][\(i)] = \(v) is outside 0..<\(numPatches)")
                    }
                    guard seen[v] != stamp else {
                        throw IJEPAError.invalidArgument(
                            "masks: \(name)[\(m)][\(b)] repeats patch index \(v) (at position \(i))")
                    }
                    seen[v] = stamp
                }
            }
        }
    }
}

/// The official multi-block collator (src/masks/multiblock.py, MaskCollator.__call__), seeded and reproducible.
public struct MaskCollator: Sendable {
    public let grid: Int               // H = W = image_size / patch_size
    /// Number of batches sampled so far (the official _itr_counter + 1). Block SIZES of batch
    /// number c come from an RNG seeded with (config.seed, c) only, so every process/rank with the
    /// same seed gets the same sizes at the same step; LOCATIONS come from `locationRNG`.
    /// Stays in 0..<stateCounterLimit: after 2^62 - 1 batches it wraps to 0 (no run gets there),
    /// so every counter a sample leaves behind is one a checkpoint load accepts.
    public var counter: Int64
    public var locationRNG: RNG

    private let seed: UInt64
    private let numEnc: Int
    private let numPred: Int
    private let minKeep: Int
    private let allowOverlap: Bool
    private let fullGrid: Bool
    private let encScale: (Double, Double)
    private let predScale: (Double, Double)
    private let aspectRatio: (Double, Double)
    /// Upper bounds of a target / context block's patch count over every draw (to size arrays once).
    private let maxPredBlock: Int, maxEncBlock: Int

    /// Failed draws per constraint level before the official code drops one target-complement
    /// constraint (`og_timeout` in multiblock.py).
    private static let triesPerLevel = 20
    /// XOR-ed into config.seed for the location stream ("MASK-LOC").
    private static let locationSeedSalt: UInt64 = 0x4D41_534B_2D4C_4F43

    /// Throws `IJEPAError.invalidArgument` if a mask field of the config is out of range or the
    /// config can never give a valid mask (even the largest possible block has <= min_keep
    /// patches). Fields unrelated to masking are not checked here.
    public init(config: ModelConfig) throws {
        func bad(_ m: String) -> IJEPAError { .invalidArgument("mask sampler: " + m) }
        guard config.patchSize >= 1, config.imageSize >= config.patchSize else {
            throw bad("need 1 <= patch_size <= image_size, got image_size \(config.imageSize), patch_size \(config.patchSize)")
        }
        let g = config.imageSize / config.patchSize   // floor, like the official `//`
        guard g <= 46_340 else { throw bad("patch grid \(g)x\(g) is too large for Int32 indices") }
        guard (1...65_536).contains(config.numEncMasks) else {
            throw bad("num_enc_masks must be in 1...65536, got \(config.numEncMasks)")
        }
        guard (1...65_536).contains(config.numPredMasks) else {
            throw bad("num_pred_masks must be in 1...65536, got \(config.numPredMasks)")
        }
        guard config.minKeep >= 0 else { throw bad("min_keep must be >= 0, got \(config.minKeep)") }

        // Float config values go through their shortest decimal form, so 0.15 becomes the
        // Double 0.15 that the official YAML gives Python (not 0.15000000596...).
        func dbl(_ f: Float) -> Double { Double(String(describing: f)) ?? Double(f) }
        func range(_ r: (Float, Float), _ name: String, lo: Float, hi: Float, open: Bool) throws -> (Double, Double) {
            let okLo = open ? r.0 > lo : r.0 >= lo
            guard r.0.isFinite, r.1.isFinite, okLo, r.0 <= r.1, r.1 <= hi else {
                throw bad("\(name) must be finite with \(lo) \(open ? "<" : "<=") min <= max <= \(hi), got (\(r.0), \(r.1))")
            }
            return (dbl(r.0), dbl(r.1))
        }
        let enc = try range(config.encMaskScale, "enc_mask_scale", lo: 0, hi: 1, open: false)
        let pred = try range(config.predMaskScale, "pred_mask_scale", lo: 0, hi: 1, open: false)
        let ar = try range(config.aspectRatio, "aspect_ratio", lo: 1e-3, hi: 1e3, open: false)

        grid = g
        counter = 0
        locationRNG = RNG(seed: config.seed ^ Self.locationSeedSalt)
        seed = config.seed
        numEnc = config.numEncMasks
        numPred = config.numPredMasks
        minKeep = config.minKeep
        allowOverlap = config.allowOverlap
        fullGrid = config.fullGrid
        encScale = enc
        predScale = pred
        aspectRatio = ar

        // Upper bounds on h and w over every possible draw (each step of the size formula is
        // monotone in the scale, h in the aspect ratio and w in its inverse). If even that box
        // is not larger than min_keep, no draw can ever succeed.
        func largest(_ scale: (Double, Double), _ ar: (Double, Double)) -> (Int, Int) {
            let maxKeep = Int(Double(g * g) * scale.1)
            let h = Int((Double(maxKeep) * ar.1).squareRoot().rounded(.toNearestOrEven))
            let w = Int((Double(maxKeep) / ar.0).squareRoot().rounded(.toNearestOrEven))
            let full = config.fullGrid
            return (Self.clip(h, grid: g, fullGrid: full), Self.clip(w, grid: g, fullGrid: full))
        }
        let bounds = [("target (pred)", largest(pred, ar), "pred_mask_scale"),
                      ("context (enc)", largest(enc, (1, 1)), "enc_mask_scale")]
        maxPredBlock = bounds[0].1.0 * bounds[0].1.1
        maxEncBlock = bounds[1].1.0 * bounds[1].1.1
        for (what, (h, w), scaleName) in bounds where h * w <= minKeep {
            throw bad("even the largest possible \(what) block, \(h)x\(w) = \(h * w) patches, is not more "
                      + "than min_keep = \(minKeep) on the \(g)x\(g) patch grid (image_size \(config.imageSize) "
                      + "/ patch_size \(config.patchSize)), so no valid mask exists; the official sampler "
                      + "would loop forever (facebookresearch/ijepa issue #68). Lower min_keep, raise "
                      + "\(scaleName), or use a smaller patch_size.")
        }
        // Smallest blocks over a dense sweep of the one random draw: if some draws give a block
        // of <= min_keep patches, a model with this config would fail at some later step, so
        // reject it now.
        for (what, scale, aspect, scaleName) in [("target (pred)", pred, ar, "pred_mask_scale"),
                                                 ("context (enc)", enc, (1.0, 1.0), "enc_mask_scale")] {
            for k in 0...4096 {
                let (h, w) = blockSize(Double(k) / 4096, scale: scale, aspect: aspect)
                if h * w <= minKeep {
                    throw bad("some draws give a \(what) block of \(h)x\(w) = \(h * w) patches, not more than "
                              + "min_keep = \(minKeep), on the \(g)x\(g) patch grid; the official sampler would "
                              + "loop forever on them (facebookresearch/ijepa issue #68). Lower min_keep or raise "
                              + "the lower end of \(scaleName).")
                }
            }
        }
    }

    /// The official size clipping: `while h >= H: h -= 1`, or `while h > H` with fullGrid.
    private static func clip(_ v: Int, grid: Int, fullGrid: Bool) -> Int {
        fullGrid ? min(v, grid) : min(v, grid - 1)
    }

    private func clip(_ v: Int) -> Int { Self.clip(v, grid: grid, fullGrid: fullGrid) }

    /// Block (h, w) sizes the next call would use (pred, enc) — for tests and logging.
    /// (`counter:` selects the batch number; `blockSizes(counter: counter)` is the next call's.)
    public func blockSizes(counter: Int64) -> (pred: (Int, Int), enc: (Int, Int)) {
        var g = RNG(seed: Self.sizeSeed(seed, counter))
        let p = blockSize(g.uniform(), scale: predScale, aspect: aspectRatio)
        let e = blockSize(g.uniform(), scale: encScale, aspect: (1, 1))
        return (p, e)
    }

    /// `_sample_block_size`: one draw `r` sets both the scale and the aspect ratio.
    private func blockSize(_ r: Double, scale: (Double, Double), aspect: (Double, Double)) -> (Int, Int) {
        let s = scale.0 + r * (scale.1 - scale.0)
        let maxKeep = Int(Double(grid * grid) * s)                  // int(): truncation
        let ar = aspect.0 + r * (aspect.1 - aspect.0)
        let h = Int((Double(maxKeep) * ar).squareRoot().rounded(.toNearestOrEven))  // round(): half to even
        let w = Int((Double(maxKeep) / ar).squareRoot().rounded(.toNearestOrEven))
        return (clip(h), clip(w))
    }

    /// Seed of the size RNG of batch number c: a hash of (config.seed, c).
    private static func sizeSeed(_ seed: UInt64, _ c: Int64) -> UInt64 {
        mix64(seed ^ mix64(UInt64(bitPattern: c) ^ 0x5349_5A45_5345_4544))  // "SIZESEED"
    }

    private static func mix64(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Samples the masks of the next batch and advances `counter` and `locationRNG`.
    /// Throws `IJEPAError.invalidArgument` if batch < 1, or if this batch's block size holds
    /// <= min_keep patches (where the official code would hang, issue #68). On a throw the
    /// collator is unchanged.
    /// ragged: keep every context whole (kEnc = the longest, `encLen` set, padding -1) instead
    /// of the official cut to the batch minimum; the draws and the generator's advance are the same.
    public mutating func sample(batch: Int, ragged: Bool = false) throws -> MaskSet {
        var out = MaskSet(batch: 0, numEnc: 0, kEnc: 0, numPred: 0, kPred: 0, enc: [], pred: [])
        var scratch = SamplerScratch()
        try sample(batch: batch, ragged: ragged, into: &out, scratch: &scratch)
        return out
    }

    /// Working arrays of `sample(batch:ragged:into:scratch:)`, kept by the caller.
    public struct SamplerScratch: Sendable {
        var encStage: [Int32] = [], encLen: [Int] = [], cover: [Int32] = []
        public init() {}
        init(encStage: [Int32], encLen: [Int], cover: [Int32]) {
            self.encStage = encStage; self.encLen = encLen; self.cover = cover
        }
    }

    /// `sample(batch:ragged:)` into `out`, reusing the storage of its arrays and of `scratch`
    /// (a steady training step that samples its own masks does not allocate).
    public mutating func sample(batch: Int, ragged: Bool, into out: inout MaskSet, scratch: inout SamplerScratch) throws {
        guard batch >= 1 else {
            throw IJEPAError.invalidArgument("mask sampler: batch must be >= 1, got \(batch)")
        }
        let c = counter
        let (p, e) = blockSizes(counter: c)
        if p.0 * p.1 <= minKeep { throw tooSmall(c, "target (pred)", p) }
        if e.0 * e.1 <= minKeep { throw tooSmall(c, "context (enc)", e) }

        let H = grid, W = grid
        let span = fullGrid ? 1 : 0          // randint(0, H-h) officially, randint(0, H-h+1) fixed
        let (ph, pw) = p, (eh, ew) = e
        let kPred = ph * pw                  // every target block of the batch has this size
        let encCap = eh * ew
        // (the arrays are reserved for the largest blocks this config can draw; see below)
        let (masksTimesBatch, o1) = max(numPred, numEnc).multipliedReportingOverflow(by: batch)
        let (total, o2) = masksTimesBatch.multipliedReportingOverflow(by: max(kPred, encCap, maxPredBlock, maxEncBlock))
        guard !o1, !o2, total <= Int(Int32.max) else {
            throw IJEPAError.invalidArgument("mask sampler: batch \(batch) is too large for the mask arrays")
        }
        var rng = locationRNG

        func reset<T>(_ a: inout [T], _ n: Int, _ v: T) {
            a.removeAll(keepingCapacity: true)
            a.append(contentsOf: repeatElement(v, count: n))
        }
        var pred = out.pred, encStage = scratch.encStage, encLen = scratch.encLen, cover = scratch.cover
        out.pred = []; scratch = SamplerScratch()   // now uniquely referenced: no copy on write
        // sized once for the largest blocks this config can draw, so later batches do not allocate
        pred.reserveCapacity(numPred * batch * max(kPred, maxPredBlock))
        encStage.reserveCapacity(numEnc * batch * max(encCap, maxEncBlock))
        reset(&pred, numPred * batch * kPred, 0)
        reset(&encStage, numEnc * batch * encCap, 0)
        reset(&encLen, numEnc * batch, 0)
        // cover[n] = index of the first target block of the current image holding patch n, or
        // numPred if none. Constraint level L (keep the complements of targets 0..<L) keeps n iff
        // cover[n] >= L.
        reset(&cover, H * W, 0)
        let uncovered = Int32(numPred)

        for b in 0..<batch {
            for i in cover.indices { cover[i] = uncovered }

            // Targets: no constraint, so the first draw is valid (h*w > min_keep checked above).
            for k in 0..<numPred {
                let top = rng.randint(0, H - ph + span)
                let left = rng.randint(0, W - pw + span)
                var o = (k * batch + b) * kPred
                for r in top..<(top + ph) {
                    for col in left..<(left + pw) {
                        let n = r * W + col
                        pred[o] = Int32(n)
                        o += 1
                        if cover[n] == uncovered { cover[n] = Int32(k) }
                    }
                }
            }

            // Contexts: the box minus the targets, dropping target constraints from the END of
            // the list after every 20 failed draws. Terminates: at level 0 any box is valid.
            for j in 0..<numEnc {
                var tries = 0, timeout = Self.triesPerLevel
                while true {
                    let top = rng.randint(0, H - eh + span)
                    let left = rng.randint(0, W - ew + span)
                    let level = Int32(allowOverlap ? 0 : max(numPred - tries, 0))
                    var count = 0
                    for r in top..<(top + eh) {
                        for col in left..<(left + ew) where cover[r * W + col] >= level { count += 1 }
                    }
                    if count > minKeep {
                        var o = (j * batch + b) * encCap
                        for r in top..<(top + eh) {
                            for col in left..<(left + ew) where cover[r * W + col] >= level {
                                encStage[o] = Int32(r * W + col)
                                o += 1
                            }
                        }
                        encLen[j * batch + b] = count
                        break
                    }
                    timeout -= 1
                    if timeout == 0 {
                        tries += 1
                        timeout = Self.triesPerLevel
                        Log.emit(.warn, "Valid mask not found, decreasing acceptable-regions [\(tries)]")
                    }
                }
            }
        }

        // Officially: truncate every context to the batch minimum, keeping the lowest raster
        // indices. Ragged: keep each whole, padded to the longest with -1.
        var kEnc = encLen[0]
        for l in encLen { kEnc = ragged ? max(kEnc, l) : min(kEnc, l) }
        var enc = out.enc, outLen = out.encLen ?? []
        out.enc = []; out.encLen = nil
        enc.reserveCapacity(numEnc * batch * max(encCap, maxEncBlock))
        if ragged { outLen.reserveCapacity(numEnc * batch) }
        reset(&enc, numEnc * batch * kEnc, -1)
        for row in 0..<(numEnc * batch) {
            let src = row * encCap, dst = row * kEnc
            for i in 0..<(ragged ? encLen[row] : kEnc) { enc[dst + i] = encStage[src + i] }
        }
        outLen.removeAll(keepingCapacity: true)
        if ragged { for l in encLen { outLen.append(Int32(l)) } }

        locationRNG = rng
        counter = c < stateCounterLimit - 1 ? c + 1 : 0
        out = MaskSet(batch: batch, numEnc: numEnc, kEnc: kEnc, numPred: numPred, kPred: kPred,
                      enc: enc, pred: pred, encLen: ragged ? outLen : nil)
        scratch = SamplerScratch(encStage: encStage, encLen: encLen, cover: cover)
    }

    private func tooSmall(_ c: Int64, _ what: String, _ b: (Int, Int)) -> IJEPAError {
        IJEPAError.invalidArgument(
            "mask sampler: batch number \(c) drew a \(what) block of \(b.0)x\(b.1) = \(b.0 * b.1) patches, "
                + "not more than min_keep = \(minKeep), on the \(grid)x\(grid) patch grid; the official "
                + "sampler would loop forever here (facebookresearch/ijepa issue #68). Lower min_keep "
                + "or raise the mask scales.")
    }
}
