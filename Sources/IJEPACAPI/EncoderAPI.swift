import CIJEPA
import Glibc
import IJEPACore

// The inference-only encoder handle and the preprocessing of decoded images. Each function
// checks its pointers and struct sizes, converts, and calls the engine (ViTEncoder,
// Preprocess), which validates the values.

final class EncoderBox: @unchecked Sendable {   // used by one thread at a time (the header's rule)
    let encoder: ViTEncoder
    init(_ e: ViTEncoder) { encoder = e }
}

let liveEncoders = HandleTable<EncoderBox>(kind: "encoder", origin: "ijepa_encoder_load/ijepa_encoder_from_model", slot: 8)

func encoderBox(_ p: OpaquePointer?) throws -> ViTEncoder { try liveEncoders.lookup(p, "e").encoder }


func encoderKind(_ v: Int32, _ name: String) throws -> EncoderKind {
    guard let k = EncoderKind(rawValue: Int(v)) else {
        throw invalid("\(name) must be IJEPA_TARGET_ENCODER (0) or IJEPA_CONTEXT_ENCODER (1), got \(v)")
    }
    return k
}

@c @implementation
public func ijepa_encoder_options_init(_ opts: UnsafeMutablePointer<ijepa_encoder_options>?) -> Int32 {
    guarded {
        guard let opts else { throw invalid("opts is NULL") }
        let d = EncoderLoadOptions()
        try writeCovered(ijepa_encoder_options(struct_size: 0, which_encoder: Int32(d.which.rawValue),
                                               num_heads: Int32(d.numHeads), n_threads: Int32(d.nThreads),
                                               pos_interpolation: Int32(d.posInterpolation.rawValue)), to: opts, "opts")
    }
}

@c @implementation
public func ijepa_encoder_load(_ path: UnsafePointer<CChar>?, _ opts: UnsafePointer<ijepa_encoder_options>?,
                               _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    guarded {
        guard let path else { throw invalid("path is NULL") }
        guard let out else { throw invalid("out is NULL") }
        var o = EncoderLoadOptions()
        if let opts {
            let c = opts.pointee
            try checkStructSize(c.struct_size, MemoryLayout<ijepa_encoder_options>.size, "opts", "set it to sizeof(ijepa_encoder_options), then call ijepa_encoder_options_init")
            o.which = try encoderKind(c.which_encoder, "opts->which_encoder")
            if c.num_heads < 0 { throw invalid("opts->num_heads must be >= 0 (0: from the file), got \(c.num_heads)") }
            o.numHeads = Int(c.num_heads)
            o.nThreads = Int(c.n_threads)
            guard let pi = PosInterpolation(rawValue: Int(c.pos_interpolation)) else {
                throw invalid("opts->pos_interpolation must be IJEPA_POS_AUTO, IJEPA_POS_BICUBIC or IJEPA_POS_BICUBIC_AA, got \(c.pos_interpolation)")
            }
            o.posInterpolation = pi
        }
        out.pointee = liveEncoders.register(EncoderBox(try ViTEncoder.load(from: String(cString: path), o)))
    }
}

@c @implementation
public func ijepa_encoder_from_model(_ m: OpaquePointer?, _ which_encoder: Int32,
                                     _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    guarded {
        let b = try box(m)
        guard let out else { throw invalid("out is NULL") }
        let kind = try encoderKind(which_encoder, "which_encoder")
        out.pointee = liveEncoders.register(EncoderBox(try ViTEncoder(copying: b.model, kind)))
    }
}

@c @implementation
public func ijepa_encoder_free(_ e: OpaquePointer?) { liveEncoders.remove(e) }

@c @implementation
public func ijepa_encoder_save(_ e: OpaquePointer?, _ path: UnsafePointer<CChar>?) -> Int32 {
    guarded {
        let enc = try encoderBox(e)
        guard let path else { throw invalid("path is NULL") }
        try enc.save(to: String(cString: path))
    }
}

@c @implementation
public func ijepa_encoder_get_info(_ e: OpaquePointer?, _ out: UnsafeMutablePointer<ijepa_encoder_info>?) -> Int32 {
    guarded {
        let enc = try encoderBox(e)
        guard let out else { throw invalid("out is NULL") }
        let s = enc.shape
        let info = ijepa_encoder_info(
            struct_size: 0, image_size: Int32(enc.imageSize), patch_size: Int32(s.patchSize),
            in_chans: Int32(s.inChans), embed_dim: Int32(s.embedDim), depth: Int32(s.depth), num_heads: Int32(s.numHeads),
            mlp_hidden: Int32(s.mlpHidden), source: Int32(enc.source.rawValue),
            which_encoder: enc.which.map { Int32($0.rawValue) } ?? -1, n_threads: Int32(enc.nThreads),
            pos_interpolation: Int32(enc.posInterpolation.rawValue), layer_norm_eps: s.lnEps)
        try writeCovered(info, to: out, "out")
    }
}

@c @implementation
public func ijepa_encoder_set_n_threads(_ e: OpaquePointer?, _ n_threads: Int32) -> Int32 {
    guarded { try encoderBox(e).setThreads(Int(n_threads)) }
}

@c @implementation
public func ijepa_encoder_num_tokens(_ e: OpaquePointer?, _ height: Int32, _ width: Int32) -> Int32 {
    var n: Int32 = -1
    let status = guarded { n = Int32(try encoderBox(e).numTokens(height: Int(height), width: Int(width))) }
    return status == 0 ? n : -1
}

@c @implementation
public func ijepa_encoder_encode(_ e: OpaquePointer?, _ images: UnsafePointer<Float>?, _ batch: Int32, _ height: Int32,
                                 _ width: Int32, _ tokens: UnsafeMutablePointer<Float>?,
                                 _ pooled: UnsafeMutablePointer<Float>?) -> Int32 {
    guarded {
        let enc = try encoderBox(e)
        guard let images else { throw invalid("images is NULL") }
        if tokens == nil && pooled == nil { throw invalid("tokens and pooled are both NULL: nothing to write") }
        try enc.encode(images: images, batch: try checkBatch(batch), height: Int(height), width: Int(width),
                       tokens: tokens, pooled: pooled)
    }
}

@c @implementation
public func ijepa_encoder_encode_layers(_ e: OpaquePointer?, _ images: UnsafePointer<Float>?, _ batch: Int32,
                                        _ height: Int32, _ width: Int32, _ last_k: Int32,
                                        _ pooled: UnsafeMutablePointer<Float>?) -> Int32 {
    guarded {
        let enc = try encoderBox(e)
        guard let images else { throw invalid("images is NULL") }
        guard let pooled else { throw invalid("pooled is NULL") }
        try enc.encodeLayers(images: images, batch: try checkBatch(batch), height: Int(height), width: Int(width),
                             lastK: Int(last_k), pooled: pooled)
    }
}

// MARK: preprocessing

@c @implementation
public func ijepa_preprocess_init(_ p: UnsafeMutablePointer<ijepa_preprocess>?, _ crop: Int32) -> Int32 {
    guarded {
        guard let p else { throw invalid("p is NULL") }
        if crop < 1 || crop > 1 << 16 { throw invalid("crop must be in 1...65536, got \(crop)") }
        let d = Preprocess(crop: Int(crop))
        try writeCovered(ijepa_preprocess(struct_size: 0, resize: Int32(d.resize), crop: Int32(d.crop),
                                          mean: (d.mean.0, d.mean.1, d.mean.2), std: (d.std.0, d.std.1, d.std.2)), to: p, "p")
    }
}

@c @implementation
public func ijepa_preprocess_rgb8(_ rgb: UnsafePointer<UInt8>?, _ height: Int32, _ width: Int32,
                                  _ p: UnsafePointer<ijepa_preprocess>?, _ out: UnsafeMutablePointer<Float>?) -> Int32 {
    guarded {
        guard let rgb else { throw invalid("rgb is NULL") }
        guard let p else { throw invalid("p is NULL") }
        guard let out else { throw invalid("out is NULL") }
        let c = p.pointee
        try checkStructSize(c.struct_size, MemoryLayout<ijepa_preprocess>.size, "p", "set it to sizeof(ijepa_preprocess), then call ijepa_preprocess_init")
        var pre = Preprocess(crop: Int(c.crop))
        pre.resize = Int(c.resize)
        pre.mean = c.mean
        pre.std = c.std
        try pre.apply(rgb, height: Int(height), width: Int(width), into: out)
    }
}
