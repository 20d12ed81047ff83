import Glibc

/// Loading a ViTEncoder from the files people have: libijepa checkpoints, official-name
/// safetensors, Hugging Face IJepaModel and timm VisionTransformer weights. The format is
/// recognised from the tensor names (and, for timm, its config.json); sizes come from the
/// tensors; heads and LayerNorm eps from the metadata or config.json. Every tensor is read
/// straight into the encoder's block (no second copy of the weights) and checked before the
/// encoder is handed out.
public struct EncoderLoadOptions: Sendable {
    public var which: EncoderKind = .target
    /// 0: from the file.
    public var numHeads = 0
    /// <= 0: all cores.
    public var nThreads = 0
    public var posInterpolation: PosInterpolation = .auto
    public init() {}
}

extension ViTEncoder {
    /// Loads `path`: a safetensors file (with a config.json beside it for Hugging Face and timm
    /// weights) or a directory holding model.safetensors and config.json.
    public static func load(from path: String, _ options: EncoderLoadOptions = EncoderLoadOptions()) throws -> ViTEncoder {
        try namingFile(path) { try loadUnnamed(path, options) }
    }

    private static func loadUnnamed(_ path: String, _ o: EncoderLoadOptions) throws -> ViTEncoder {
        if path.isEmpty { throw IJEPAError.invalidArgument("path is empty") }
        var file = path, configPath: String?
        var st = stat()
        if stat(path, &st) != 0 { throw IJEPAError.io("cannot open \(path): \(String(cString: strerror(errno)))") }
        let dir: String
        if (st.st_mode & S_IFMT) == S_IFDIR {
            dir = path
            file = path + "/model.safetensors"
            if access(file, F_OK) != 0 {
                let sharded = access(path + "/model.safetensors.index.json", F_OK) == 0
                throw IJEPAError.format(sharded
                    ? "holds sharded weights (model.safetensors.index.json); merge the shards into one model.safetensors"
                    : "is a directory without model.safetensors (a Hugging Face model directory holds model.safetensors and config.json)")
            }
        } else {
            dir = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        }
        if access(dir + "/config.json", F_OK) == 0 { configPath = dir + "/config.json" }
        let f: SafetensorsFile
        do { f = try SafetensorsFile(openingLazily: file) } catch let e as IJEPAError {
            try refusePickle(file)
            throw e
        }
        let names = try normalizedNames(f)
        let plan: EncoderPlan
        if let description = f.metadata[EncoderFile.metadataKey] {
            plan = try EncoderPlan(encoderFile: description, names: names, options: o, f: f)
        } else {
            let config: JSONValue? = try configPath.map { p in
                do { return try JSONValue.parse(try readWholeFile(p)) } catch let e as IJEPAError {
                    throw IJEPAError.format("\(p): \(e.message)")
                }
            }
            plan = try EncoderPlan(names: names, metadata: f.metadata, config: config, configPath: configPath,
                                   options: o, f: f)
        }
        let mapped = plan.mapped(f, names: names)
        let enc = try ViTEncoder(shape: plan.shape, grid: plan.grid, source: plan.source, which: plan.which,
                                 posInterpolation: o.posInterpolation, threads: o.nThreads, storage: mapped)
        try plan.read(f, names: names, into: enc, copying: mapped == nil)
        enc.packWeights(alreadyPacked: plan.prepacked)
        return enc
    }

    /// A file that is not safetensors but PyTorch's own format (zip, or a legacy pickle: 0x80
    /// then the protocol) gets a message that says what to do.
    private static func refusePickle(_ file: String) throws {
        let h = try OpenFile(file)
        var magic = [UInt8](repeating: 0, count: 4)
        if h.size >= 4 { try magic.withUnsafeMutableBytes { try h.read(into: $0.baseAddress!, count: 4, at: 0) } }
        if magic == [0x50, 0x4B, 0x03, 0x04] || (magic[0] == 0x80 && (2...5).contains(magic[1])) {
            throw IJEPAError.format("is a PyTorch pickle (.pth / .pth.tar / .bin), which this library does not execute; convert it to safetensors first (official checkpoints: tools/convert_official.py; Hugging Face and timm publish model.safetensors)")
        }
    }
}

/// What to read from a file, where to put it, and the sizes it implies.
struct EncoderPlan {
    var shape: EncoderShape
    var grid: Int
    var source: EncoderSource
    var which: EncoderKind?
    /// (file key, destination tensor name in the encoder layout or "pos", float offset in it,
    /// expected shape)
    var pieces: [(key: String, dest: String, offset: Int, shape: [Int])] = []
    /// A libijepa encoder file (EncoderFile): its pieces may be mapped rather than read.
    var isEncoderFile = false
    /// Its block linears are stored packed (the file's panels are used as they are).
    var prepacked = false

    init(names: [String: String], metadata: [String: String], config: JSONValue?, configPath: String?,
         options o: EncoderLoadOptions, f: SafetensorsFile) throws {
        func entry(_ norm: String) -> SafetensorsFile.Entry? { names[norm].flatMap { f.entries[$0] } }
        func fmt(_ m: String) -> IJEPAError { .format(m) }
        // ---- the format, from the names
        let hfSuffix = "embeddings.patch_embeddings.projection.weight"
        let src: EncoderSource, wh: EncoderKind?
        var prefix = ""
        var hfV4 = false
        let ignoredPrefixes: [String]
        if let hfKey = names.keys.first(where: { $0 == hfSuffix || $0.hasSuffix("." + hfSuffix) }) {
            src = .huggingFace
            wh = nil
            prefix = String(hfKey.dropLast(hfSuffix.count))
            hfV4 = names[prefix + "encoder.layer.0.layernorm_before.weight"] != nil
            ignoredPrefixes = ["pooler.", "classifier.", "embeddings.mask_token"].map { prefix + $0 } + ["classifier."]
        } else if names["target_encoder.patch_embed.proj.weight"] != nil || names["encoder.patch_embed.proj.weight"] != nil {
            src = metadata["ijepa.contents"] != nil ? .checkpoint : .official
            wh = o.which
            prefix = o.which == .target ? "target_encoder." : "encoder."
            if names[prefix + "patch_embed.proj.weight"] == nil {
                let has = o.which == .target ? "encoder.* (the context encoder)" : "target_encoder.* (the target encoder)"
                throw fmt("holds only \(has); ask for the \(o.which == .target ? "context" : "target") encoder")
            }
            // the other encoder, the predictor and optimizer state are not this encoder's
            ignoredPrefixes = [o.which == .target ? "encoder." : "target_encoder.", "predictor.", "adam_m.", "adam_v."]
        } else if names["patch_embed.proj.weight"] != nil {
            let isTimm = config?["architecture"]?.string != nil || config?["pretrained_cfg"] != nil
            src = isTimm ? .timm : .official
            wh = nil
            ignoredPrefixes = ["head."]
        } else {
            throw fmt("is not an I-JEPA encoder: no patch embedding tensor (looked for 'patch_embed.proj.weight' under 'encoder.' / 'target_encoder.' or bare, and Hugging Face's '\(hfSuffix)')")
        }
        if src == .timm {
            for bad in ["cls_token", "reg_token", "fc_norm.weight"] where names[bad] != nil {
                throw fmt(bad == "fc_norm.weight"
                    ? "is a timm model with fc_norm (its final norm after pooling), not an I-JEPA encoder (vit_*_gap_*_ijepa: final norm on the tokens)"
                    : "has a '\(bad)': a ViT with extra tokens is not an I-JEPA encoder")
            }
        }
        // ---- the file key of each of our tensors
        func official(_ key: String) -> String { prefix + key }
        func hf(_ ours: String) -> String? {
            // ours: official key without "encoder."
            if ours == "patch_embed.proj.weight" { return prefix + "embeddings.patch_embeddings.projection.weight" }
            if ours == "patch_embed.proj.bias" { return prefix + "embeddings.patch_embeddings.projection.bias" }
            if ours == "norm.weight" { return prefix + "layernorm.weight" }
            if ours == "norm.bias" { return prefix + "layernorm.bias" }
            return nil
        }
        // ---- sizes from the tensors
        let patchKey = src == .huggingFace ? hf("patch_embed.proj.weight")! : official("patch_embed.proj.weight")
        guard let pw = entry(patchKey), pw.shape.count == 4, pw.shape[2] == pw.shape[3] else {
            throw fmt("'\(patchKey)' must have shape [D, C, p, p], has \(entry(patchKey)?.shape ?? [])")
        }
        let D = pw.shape[0], C = pw.shape[1], p = pw.shape[2]
        func blockKey(_ i: Int, _ part: String) -> String {   // part: official block key after "blocks.i."
            if src != .huggingFace { return official("blocks.\(i).\(part)") }
            let l = hfV4 ? "\(prefix)encoder.layer.\(i)." : "\(prefix)layers.\(i)."
            let v4: [String: String] = ["norm1": "layernorm_before", "norm2": "layernorm_after", "attn.proj": "attention.output.dense",
                                         "mlp.fc1": "intermediate.dense", "mlp.fc2": "output.dense"]
            let v5: [String: String] = ["norm1": "layernorm_before", "norm2": "layernorm_after", "attn.proj": "attention.o_proj",
                                         "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2"]
            let (module, leaf) = part.hasSuffix(".weight") ? (String(part.dropLast(7)), "weight") : (String(part.dropLast(5)), "bias")
            return l + (hfV4 ? v4 : v5)[module, default: module] + "." + leaf
        }
        func qkvKeys(_ i: Int, _ leaf: String) -> [String] {
            let l = hfV4 ? "\(prefix)encoder.layer.\(i).attention.attention." : "\(prefix)layers.\(i).attention."
            return (hfV4 ? ["query", "key", "value"] : ["q_proj", "k_proj", "v_proj"]).map { l + $0 + "." + leaf }
        }
        var depth = 0
        while entry(blockKey(depth, "norm1.weight")) != nil { depth += 1; if depth > 1024 { break } }
        if depth == 0 { throw fmt("has no transformer blocks ('\(blockKey(0, "norm1.weight"))' is missing)") }
        let fc1 = blockKey(0, "mlp.fc1.weight")
        guard let f1 = entry(fc1), f1.shape.count == 2 else { throw fmt("'\(fc1)' is missing or not a matrix") }
        let hidden = f1.shape[0]
        let posKey = src == .huggingFace ? prefix + "embeddings.position_embeddings" : official("pos_embed")
        guard let pe = entry(posKey) else { throw fmt("has no position table '\(posKey)'") }
        let posCount = pe.count
        guard D > 0, posCount % D == 0, pe.shape.last == D else {
            throw fmt("'\(posKey)' has shape \(pe.shape); its last dimension must be the width \(D)")
        }
        let N = posCount / D
        let g = Int(Double(N).squareRoot().rounded())
        if g * g != N { throw fmt("'\(posKey)' has \(N) positions, not a square grid (a class token's position?)") }
        // ---- what the tensors cannot tell
        var heads = o.numHeads
        var eps: Float = blockLNEps
        var fileHeads: Int?
        if let cj = metadata["ijepa.config"] {
            let j = try JSONValue.parse(cj)
            if let h = j["num_heads"]?.number, h >= 1, h <= 65536, h == h.rounded() { fileHeads = Int(h) }
        }
        if src == .huggingFace {
            guard let config else {
                throw fmt("is Hugging Face IJepaModel weights without their config.json (put config.json beside model.safetensors)")
            }
            if let h = config["num_attention_heads"]?.number, h >= 1, h <= 65536, h == h.rounded() { fileHeads = Int(h) }
            // transformers' IJepaConfig default when config.json does not say
            let e = config["layer_norm_eps"]?.number ?? 1e-12
            eps = Float(e)
            if let act = config["hidden_act"]?.string, act != "gelu" {
                throw fmt("config.json says hidden_act '\(act)'; I-JEPA encoders use the exact (erf) GELU, 'gelu'")
            }
            if let cp = config["patch_size"], cp != .number(Double(p)) {
                throw fmt("config.json says patch_size \(cp.serialized) but '\(patchKey)' has \(p)x\(p) patches")
            }
            if let cc = config["num_channels"], cc != .number(Double(C)) {
                throw fmt("config.json says num_channels \(cc.serialized) but '\(patchKey)' has \(C) input channels")
            }
        }
        if src == .timm, let config {
            if let h = config["model_args"]?["num_heads"]?.number, h >= 1, h <= 65536, h == h.rounded() {
                fileHeads = Int(h)
            } else if let arch = config["architecture"]?.string {
                // timm's vit_<size>_* definitions
                let table: [(String, Int)] = [("vit_tiny_", 3), ("vit_small_", 6), ("vit_base_", 12), ("vit_large_", 16),
                                              ("vit_huge_", 16), ("vit_giant_", 16), ("vit_gigantic_", 16)]
                fileHeads = table.first { arch.hasPrefix($0.0) }?.1
            }
        }
        if heads <= 0 {
            guard let fileHeads else {
                let whereToLook = src == .huggingFace ? "config.json's num_attention_heads"
                    : src == .timm ? "config.json's model_args.num_heads or a known architecture"
                    : "'ijepa.config' metadata (tools/convert_official.py --num-heads writes it)"
                throw fmt("does not say how many attention heads the encoder has (no \(whereToLook)); pass num_heads")
            }
            heads = fileHeads
        }
        if D % heads != 0 {
            let m = "num_heads \(heads) does not divide the width \(D)"
            throw o.numHeads > 0 ? IJEPAError.invalidArgument(m) : fmt("says " + m)
        }
        source = src
        which = wh
        shape = EncoderShape(patchSize: p, inChans: C, embedDim: D, depth: depth, numHeads: heads, mlpHidden: hidden, lnEps: eps)
        grid = g
        try ViTEncoder.validate(shape, grid: g)
        // ---- the pieces: every tensor of the layout, plus the position table
        let layout = ParamLayout(encoder: shape)
        pieces.append((posKey, "pos", 0, [N, D]))
        for t in layout.tensors {
            let ours = String(t.name.dropFirst("encoder.".count))
            if src == .huggingFace, ours.hasPrefix("blocks."), ours.contains(".attn.qkv.") {
                let i = Int(ours.split(separator: ".")[1])!
                let leaf = ours.hasSuffix("weight") ? "weight" : "bias"
                for (part, key) in qkvKeys(i, leaf).enumerated() {
                    pieces.append((key, t.name, part * t.count / 3, leaf == "weight" ? [D, D] : [D]))
                }
                continue
            }
            let key: String
            if src == .huggingFace {
                if let k = hf(ours) { key = k } else {
                    let parts = ours.split(separator: ".", maxSplits: 2)   // blocks, i, rest
                    key = blockKey(Int(parts[1])!, String(parts[2]))
                }
            } else {
                key = official(ours)
            }
            pieces.append((key, t.name, 0, t.shape))
        }
        // ---- nothing missing, nothing unknown
        let (missing, unknown) = unmatched(names, ignoring: ignoredPrefixes)
        if !missing.isEmpty { throw fmt("misses tensors of \(src.name) with \(depth) blocks: \(listed(missing))") }
        if !unknown.isEmpty { throw fmt("has tensors that are not part of \(src.name) encoder: \(listed(unknown))") }
        for pc in pieces {
            let e = entry(pc.key)!
            if e.shape.filter({ $0 != 1 }) != pc.shape.filter({ $0 != 1 }) {
                throw fmt("'\(pc.key)' has shape \(e.shape), expected \(pc.shape) for an encoder of width \(D), MLP \(hidden), \(C)x\(p)x\(p) patches")
            }
            guard ["F32", "F64", "F16", "BF16"].contains(e.dtype) else {
                throw fmt("'\(pc.key)' has dtype \(e.dtype), expected F32, F64, F16 or BF16")
            }
        }
    }

    /// The pieces' keys the file lacks, and the file's keys that are neither a piece's nor under
    /// an ignored prefix (sorted): a plan is usable when both are empty.
    func unmatched(_ names: [String: String], ignoring prefixes: [String] = []) -> (missing: [String], unknown: [String]) {
        let used = Set(pieces.map(\.key))
        return (pieces.map(\.key).filter { names[$0] == nil },
                names.keys.filter { k in !used.contains(k) && !prefixes.contains { k.hasPrefix($0) } }.sorted())
    }

    /// Reads every piece into place (copying: false, the pieces are already there: a mapped
    /// file) and checks it is finite, the pieces handed out to the encoder's threads: each
    /// thread's reads fault in the pages they fill, which is most of a load's time where fresh
    /// memory is dear (a VM: twice as fast on two threads). The error is that of the first
    /// failing piece in the plan's order.
    func read(_ f: SafetensorsFile, names: [String: String], into enc: ViTEncoder, copying: Bool) throws {
        var jobs: [(key: String, stored: String, dst: FPtr, count: Int)] = []
        for pc in pieces {
            let base: FPtr
            if pc.dest == "pos" { base = enc.pos.ptr } else {
                guard let t = enc.layout.tensor(named: pc.dest) else { throw IJEPAError.internalError("no tensor \(pc.dest)") }
                base = enc.weights.ptr + t.offset
            }
            jobs.append((pc.key, names[pc.key]!, base + pc.offset, pc.shape.reduce(1, *)))
        }
        struct Task: PoolTask {
            let f: SafetensorsFile, jobs: [(key: String, stored: String, dst: FPtr, count: Int)], copying: Bool
            let errors: UnsafeMutableBufferPointer<IJEPAError?>   // one slot per job, written by its thread
            func callAsFunction(_ i: Int, _ worker: Int) {
                let j = jobs[i]
                do {
                    if copying { try f.readFloats(j.stored, into: j.dst) }
                    if !allFinite(j.dst, j.count) { errors[i] = .numeric("'\(j.key)' contains NaN or Inf") }
                } catch let e as IJEPAError {
                    errors[i] = e
                } catch {
                    errors[i] = .io("reading '\(j.key)': \(error)")
                }
            }
        }
        var errors = [IJEPAError?](repeating: nil, count: jobs.count)
        errors.withUnsafeMutableBufferPointer { slots in
            enc.exec.pool.run(tasks: jobs.count, Task(f: f, jobs: jobs, copying: copying, errors: slots))
        }
        if let e = errors.lazy.compactMap({ $0 }).first { throw e }
    }
}
