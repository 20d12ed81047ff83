import CIJEPAKernels
import Glibc

/// The libijepa encoder file (ijepa_encoder_save): a safetensors file holding one encoder
/// exactly as a ViTEncoder keeps it — its flat block's tensors in layout order, then the position
/// table, one contiguous run of float32 from a 64-byte-aligned data section — so that a load maps
/// the file and uses its pages as the weights: nothing is read, copied or packed, the first
/// features come right after a check of the values. What the tensors cannot tell (heads, eps,
/// where the weights came from) is in the "ijepa.encoder" metadata.
///
/// Tensor names are the official ones without a prefix ("blocks.0.attn.qkv.weight",
/// "pos_embed" [1, grid², D]), so an unpacked file is also an official-names file. Block linears
/// stored packed (the encoder ran packed products when it was saved) are named
/// "<name>_panels", shaped [n / 16, k, 16]: panel p holds output columns 16p..16p+15, term-major
/// (ijk_pack_weights' layout), a layout no other reader would mistake for a weight.
enum EncoderFile {
    static let metadataKey = "ijepa.encoder"
    static let version = 1
    /// Alignment of the data section in the file, so the mapped floats start on a cache line.
    static let alignment = 64

    /// Offsets (in the layout) of the tensors stored packed when the block linears are.
    static func packedOffsets(_ layout: ParamLayout, _ s: EncoderShape) -> Set<Int> {
        Set(PackedWeights.tensors(layout.encoder.blocks, s).map(\.offset))
    }

    /// The file name and shape of layout tensor t.
    static func stored(_ t: TensorInfo, packed: Bool) -> (key: String, shape: [Int]) {
        let name = String(t.name.dropFirst("encoder.".count))
        if !packed { return (name, t.shape) }
        let panel = Int(IJK_PANEL)
        return (name + "_panels", [t.shape[0] / panel, t.shape[1], panel])
    }

    static func sourceName(_ s: EncoderSource) -> String {
        switch s {
        case .model: return "model"
        case .checkpoint: return "checkpoint"
        case .official: return "official"
        case .huggingFace: return "hugging_face"
        case .timm: return "timm"
        }
    }

    /// The metadata JSON of an encoder.
    static func describe(_ e: ViTEncoder) -> String {
        let s = e.shape
        var kv: [(String, JSONValue)] = [
            ("version", .number(Double(version))), ("source", .string(sourceName(e.source))),
            ("patch_size", .number(Double(s.patchSize))), ("in_chans", .number(Double(s.inChans))),
            ("embed_dim", .number(Double(s.embedDim))), ("depth", .number(Double(s.depth))),
            ("num_heads", .number(Double(s.numHeads))), ("mlp_hidden", .number(Double(s.mlpHidden))),
            ("layer_norm_eps", .number(Double(s.lnEps))), ("grid", .number(Double(e.grid))),
            ("packed_panel", .number(e.packedWeights ? Double(IJK_PANEL) : 0)),
        ]
        if let w = e.which { kv.append(("which_encoder", .string(w == .target ? "target" : "context"))) }
        return JSONValue.object(kv).serialized
    }
}

extension ViTEncoder {
    /// Writes this encoder as a libijepa encoder file (EncoderFile), atomically: a crash leaves
    /// the old file or the new one, and an encoder mapping the old file keeps its pages.
    public func save(to path: String) throws {
        try namingFile(path) {
            if path.isEmpty { throw IJEPAError.invalidArgument("path is empty") }
            var w = SafetensorsWriter()
            w.alignment = EncoderFile.alignment
            w.metadata = [(EncoderFile.metadataKey, EncoderFile.describe(self))]
            let packed = packedWeights ? EncoderFile.packedOffsets(layout, shape) : []
            for t in layout.tensors {
                let (key, shape) = EncoderFile.stored(t, packed: packed.contains(t.offset))
                w.add(key, shape: shape, floats: weights.ptr + t.offset)
            }
            w.add("pos_embed", shape: [1, grid * grid, shape.embedDim], floats: pos.ptr)
            try w.write(atomicallyTo: path)
        }
    }
}

extension EncoderPlan {
    /// The plan of an encoder file: sizes and origin from its metadata, every tensor where the
    /// layout puts it (block linears as panels when the metadata says they are packed), the
    /// position table last.
    init(encoderFile json: String, names: [String: String], options o: EncoderLoadOptions, f: SafetensorsFile) throws {
        func fmt(_ m: String) -> IJEPAError { .format("is a libijepa encoder file whose " + m) }
        let j: JSONValue
        do { j = try JSONValue.parse(Array(json.utf8)) } catch let e as IJEPAError {
            throw fmt("'\(EncoderFile.metadataKey)' metadata is not JSON: \(e.message)")
        }
        func int(_ k: String) throws -> Int {
            guard let d = j[k]?.number, d == d.rounded(), abs(d) <= Double(1 << 30) else {
                throw fmt("'\(EncoderFile.metadataKey)' metadata lacks the integer '\(k)'")
            }
            return Int(d)
        }
        let v = try int("version")
        if v != EncoderFile.version {
            throw fmt("format version is \(v); this library reads version \(EncoderFile.version) (save the encoder again with this library)")
        }
        guard let sname = j["source"]?.string,
              let src = [EncoderSource.model, .checkpoint, .official, .huggingFace, .timm].first(where: { EncoderFile.sourceName($0) == sname })
        else { throw fmt("'source' is missing or unknown") }
        var wh: EncoderKind?
        if let w = j["which_encoder"] {
            guard let ws = w.string, ws == "target" || ws == "context" else { throw fmt("'which_encoder' is neither \"target\" nor \"context\"") }
            wh = ws == "target" ? .target : .context
        }
        guard let epsD = j["layer_norm_eps"]?.number else { throw fmt("'layer_norm_eps' is missing") }
        let panel = try int("packed_panel")
        if panel != 0 && panel != Int(IJK_PANEL) {
            throw fmt("block linears are packed in panels of \(panel) columns; this library packs \(IJK_PANEL)")
        }
        let fileHeads = try int("num_heads")
        let heads = o.numHeads > 0 ? o.numHeads : fileHeads
        let s = EncoderShape(patchSize: try int("patch_size"), inChans: try int("in_chans"), embedDim: try int("embed_dim"),
                             depth: try int("depth"), numHeads: heads, mlpHidden: try int("mlp_hidden"), lnEps: Float(epsD))
        let g = try int("grid")
        if o.numHeads > 0 && (heads < 1 || s.embedDim % heads != 0) {
            throw IJEPAError.invalidArgument("num_heads \(heads) does not divide the width \(s.embedDim)")
        }
        try ViTEncoder.validate(s, grid: g)
        if panel != 0 && (s.embedDim % panel != 0 || s.mlpHidden % panel != 0) {
            throw fmt("metadata says packed in panels of \(panel), which do not divide width \(s.embedDim) and MLP width \(s.mlpHidden)")
        }
        shape = s
        grid = g
        source = src
        which = wh
        isEncoderFile = true
        prepacked = panel != 0
        let layout = ParamLayout(encoder: s)
        let packed = prepacked ? EncoderFile.packedOffsets(layout, s) : []
        for t in layout.tensors {
            let (key, stored) = EncoderFile.stored(t, packed: packed.contains(t.offset))
            pieces.append((key, t.name, 0, stored))
        }
        pieces.append(("pos_embed", "pos", 0, [1, g * g, s.embedDim]))
        // every tensor present, F32, of its exact shape; nothing else
        let (missing, unknown) = unmatched(names)
        if !missing.isEmpty { throw fmt("tensors miss \(listed(missing)) (an encoder of \(s.depth) blocks, width \(s.embedDim))") }
        if !unknown.isEmpty { throw fmt("tensors include ones that are not the encoder's: \(listed(unknown))") }
        for pc in pieces {
            let e = f.entries[names[pc.key]!]!
            if e.dtype != "F32" { throw fmt("tensor '\(pc.key)' has dtype \(e.dtype), not F32") }
            if e.shape != pc.shape { throw fmt("tensor '\(pc.key)' has shape \(e.shape), expected \(pc.shape)") }
        }
    }

    /// The weights and position table as views of the mapped file, when this is an encoder file
    /// whose pieces lie in plan order, back to back, 4-byte aligned, in an open file (as
    /// ijepa_encoder_save writes them); nil otherwise (the pieces are then read into memory).
    func mapped(_ f: SafetensorsFile, names: [String: String]) -> (weights: FloatBuffer, pos: FloatBuffer)? {
        guard isEncoderFile, case .file(let file) = f.storage, let first = pieces.first,
              let e0 = names[first.key].flatMap({ f.entries[$0] }) else { return nil }
        let start = f.dataStart + e0.begin
        var next = e0.begin
        for pc in pieces {
            guard let e = names[pc.key].flatMap({ f.entries[$0] }), e.dtype == "F32", e.begin == next else { return nil }
            next = e.end
        }
        let posCount = grid * grid * shape.embedDim
        let weightCount = (next - e0.begin) / 4 - posCount
        guard start % 4 == 0, weightCount == ParamLayout(encoder: shape).totalCount,
              let m = try? FileMapping(file),
              let w = try? FloatBuffer(viewing: m, byteOffset: start, count: weightCount),
              let p = try? FloatBuffer(viewing: m, byteOffset: start + weightCount * 4, count: posCount)
        else { return nil }
        return (w, p)
    }
}
