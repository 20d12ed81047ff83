internal import IJEPACore

/// The context (encoder) and target (predictor) masks of one batch, as patch indices
/// n = row * gridSize + col. The layouts are those of the C ABI's `ijepa_masks`:
///
/// - `enc`: `[numEnc][batch][kEnc]`, row-major: context mask `m` of image `b` is
///   `enc[(m * batch + b) * kEnc ..< (m * batch + b + 1) * kEnc]`;
/// - `pred`: `[numPred][batch][kPred]`, likewise.
///
/// As in the official collator every image of a batch has masks of the same lengths, unless
/// the masks are ragged (`encLengths` not nil, from `Model.sampleMasks(batch:ragged:)` or
/// `init(raggedEnc:pred:)`): then context mask `m` of image `b` is the first
/// `encLengths[m * batch + b]` entries of its `kEnc`-long row (kEnc = the longest) and the rest
/// is padding (-1). Indices need not be sorted (the engine gathers patches in the given order).
///
/// Get masks from `Model.sampleMasks(batch:)` (the official multi-block sampler, seeded), or
/// build your own with one of the throwing initializers, which check the shapes and the
/// indices; the model then checks them against its own config (`numEncMasks`,
/// `numPredMasks`, `numPatches`) when they are used.
public struct Masks: Sendable, Hashable {
    /// Images in the batch.
    public let batch: Int
    /// Context masks per image.
    public let numEnc: Int
    /// Patches in every context mask.
    public let kEnc: Int
    /// Target masks per image.
    public let numPred: Int
    /// Patches in every target mask.
    public let kPred: Int
    /// Context patch indices, `[numEnc][batch][kEnc]`.
    public let enc: [Int32]
    /// Target patch indices, `[numPred][batch][kPred]`.
    public let pred: [Int32]
    /// Ragged masks: each context's length, `[numEnc][batch]`; nil when every context has kEnc.
    public let encLengths: [Int32]?

    /// Whether the contexts have their own lengths.
    public var isRagged: Bool { encLengths != nil }

    /// Masks from flat arrays in the C layout.
    /// - Throws: `IJEPAError.shape` if a dimension is < 1 or an array's count is not the product
    ///   of its dimensions; `IJEPAError.invalidArgument` if an index is negative or repeats
    ///   within one mask. (Whether indices are below the model's `numPatches` is checked when the
    ///   masks are used, or by `validate(numPatches:)`.)
    public init(batch: Int, numEnc: Int, kEnc: Int, numPred: Int, kPred: Int,
                enc: [Int32], pred: [Int32]) throws(IJEPAError) {
        for (value, name) in [(batch, "batch"), (numEnc, "numEnc"), (kEnc, "kEnc"),
                              (numPred, "numPred"), (kPred, "kPred")] where value < 1 {
            throw IJEPAError.shape("masks: \(name) must be >= 1, got \(value)")
        }
        try Self.checkRows(enc, "enc", masks: numEnc, "numEnc", batch: batch, k: kEnc, "kEnc")
        try Self.checkRows(pred, "pred", masks: numPred, "numPred", batch: batch, k: kPred, "kPred")
        self.init(unchecked: batch, numEnc, kEnc, numPred, kPred, enc, pred)
    }

    /// Ragged masks from nested arrays: `enc[m][b]` is context mask `m` of image `b`, of any
    /// length >= 1; `pred[m][b]` target mask `m` of image `b`, all of one length.
    /// - Throws: as `init(enc:pred:)`.
    public init(raggedEnc enc: [[[Int32]]], pred: [[[Int32]]]) throws(IJEPAError) {
        let uniform = try Masks(enc: enc.map { $0.map { _ in [Int32(0)] } }, pred: pred)   // shapes of the lists
        let k = enc.flatMap { $0 }.map(\.count).max() ?? 0
        var flat: [Int32] = [], lengths: [Int32] = []
        for (m, images) in enc.enumerated() {
            for (b, indices) in images.enumerated() {
                guard !indices.isEmpty else { throw IJEPAError.shape("masks: enc[\(m)][\(b)] is empty") }
                flat += indices + [Int32](repeating: -1, count: k - indices.count)
                lengths.append(Int32(indices.count))
            }
        }
        // each context checked as a one-image mask: no negative or repeated index
        for images in enc {
            for indices in images {
                _ = try Masks(batch: 1, numEnc: 1, kEnc: indices.count, numPred: 1, kPred: 1, enc: indices, pred: [0])
            }
        }
        self.init(unchecked: uniform.batch, uniform.numEnc, k, uniform.numPred, uniform.kPred, flat, uniform.pred,
                  lengths)
    }

    /// Masks from nested arrays: `enc[m][b]` is context mask `m` of image `b`, `pred[m][b]`
    /// target mask `m` of image `b`. Every mask of a kind must have the same length and every
    /// kind the same number of images.
    /// - Throws: `IJEPAError.shape` for ragged or empty arrays, `IJEPAError.invalidArgument` for
    ///   negative or repeated indices (see the flat initializer).
    public init(enc: [[[Int32]]], pred: [[[Int32]]]) throws(IJEPAError) {
        func flatten(_ a: [[[Int32]]], _ name: String) throws(IJEPAError) -> (Int, Int, Int, [Int32]) {
            guard let first = a.first, let row = first.first else {
                throw IJEPAError.shape("masks: \(name) must hold at least one mask of one image")
            }
            let (b, k) = (first.count, row.count)
            var flat: [Int32] = []
            flat.reserveCapacity(a.count * b * k)
            for (m, images) in a.enumerated() {
                guard images.count == b else {
                    throw IJEPAError.shape("masks: \(name)[\(m)] has \(images.count) images, \(name)[0] has \(b)")
                }
                for (i, indices) in images.enumerated() {
                    guard indices.count == k else {
                        throw IJEPAError.shape(
                            "masks: \(name)[\(m)][\(i)] has \(indices.count) indices, \(name)[0][0] has \(k)")
                    }
                    flat += indices
                }
            }
            return (a.count, b, k, flat)
        }
        let (ne, be, ke, e) = try flatten(enc, "enc")
        let (np, bp, kp, p) = try flatten(pred, "pred")
        guard be == bp else {
            throw IJEPAError.shape("masks: enc has \(be) images per mask, pred has \(bp)")
        }
        try self.init(batch: be, numEnc: ne, kEnc: ke, numPred: np, kPred: kp, enc: e, pred: p)
    }

    /// The indices of context mask `mask` of image `image` (both must be in range).
    public func encIndices(mask: Int, image: Int) -> ArraySlice<Int32> {
        let start = (mask * batch + image) * kEnc
        return enc[start..<(start + (encLengths.map { Int($0[mask * batch + image]) } ?? kEnc))]
    }

    /// The indices of target mask `mask` of image `image` (both must be in range).
    public func predIndices(mask: Int, image: Int) -> ArraySlice<Int32> {
        let start = (mask * batch + image) * kPred
        return pred[start..<(start + kPred)]
    }

    /// Checks the masks against a patch grid of `numPatches` patches (every index in
    /// `0..<numPatches`, `kEnc` and `kPred` at most `numPatches`).
    /// - Throws: `IJEPAError.shape` or `.invalidArgument` naming the problem.
    public func validate(numPatches: Int) throws(IJEPAError) {
        let set = core
        try engine { try set.validate(numPatches: numPatches) }
    }

    // MARK: internals

    init(unchecked batch: Int, _ numEnc: Int, _ kEnc: Int, _ numPred: Int, _ kPred: Int,
         _ enc: [Int32], _ pred: [Int32], _ encLengths: [Int32]? = nil) {
        self.encLengths = encLengths
        self.batch = batch
        self.numEnc = numEnc
        self.kEnc = kEnc
        self.numPred = numPred
        self.kPred = kPred
        self.enc = enc
        self.pred = pred
    }

    init(_ s: MaskSet) {
        self.init(unchecked: s.batch, s.numEnc, s.kEnc, s.numPred, s.kPred, s.enc, s.pred, s.encLen)
    }

    var core: MaskSet {
        MaskSet(batch: batch, numEnc: numEnc, kEnc: kEnc, numPred: numPred, kPred: kPred, enc: enc, pred: pred,
                encLen: encLengths)
    }

    private static func checkRows(_ a: [Int32], _ name: String, masks: Int, _ masksName: String,
                                  batch: Int, k: Int, _ kName: String) throws(IJEPAError) {
        let (mb, o1) = masks.multipliedReportingOverflow(by: batch)
        let (expected, o2) = mb.multipliedReportingOverflow(by: k)
        if o1 || o2 || expected != a.count {
            throw IJEPAError.shape(
                "masks: \(name) has \(a.count) indices, expected \(masksName)*batch*\(kName) = "
                    + "\(masks)*\(batch)*\(k)" + (o1 || o2 ? " (overflows)" : " = \(expected)"))
        }
        var row = [Int32](repeating: 0, count: k)
        for r in 0..<(masks * batch) {
            for i in 0..<k {
                let v = a[r * k + i]
                guard v >= 0 else {
                    throw IJEPAError.invalidArgument(
                        "masks: \(name)[\(r / batch)][\(r % batch)][\(i)] = \(v) is negative")
                }
                row[i] = v
            }
            row.sort()
            for i in 1..<max(k, 1) where row[i] == row[i - 1] {
                throw IJEPAError.invalidArgument(
                    "masks: \(name)[\(r / batch)][\(r % batch)] repeats patch index \(row[i])")
            }
        }
    }
}
