import CIJEPA
import IJEPACore

// ijepa_config <-> ModelConfig, field for field.

/// Size of ijepa_config in the first release of ABI 1: up to n_threads plus 4 bytes of tail
/// padding (now the field `reserved0`, never read). Callers' structs may be larger. A field
/// appended later is read only when the caller's struct_size covers it, so a struct from an
/// older header (whose padding may hold anything) gets the field's default.
let configSizeV1 = MemoryLayout<ijepa_config>.offset(of: \ijepa_config.reserved0)! + 4
/// End of ragged_context (the first appended field).
let configSizeRagged = MemoryLayout<ijepa_config>.offset(of: \ijepa_config.ragged_context)! + 4

func cConfig(_ c: ModelConfig) -> ijepa_config {
    var o = ijepa_config()
    o.struct_size = UInt32(MemoryLayout<ijepa_config>.size)
    o.image_size = Int32(c.imageSize); o.patch_size = Int32(c.patchSize); o.in_chans = Int32(c.inChans)
    o.embed_dim = Int32(c.embedDim); o.depth = Int32(c.depth); o.num_heads = Int32(c.numHeads)
    o.mlp_ratio = c.mlpRatio
    o.pred_embed_dim = Int32(c.predEmbedDim); o.pred_depth = Int32(c.predDepth); o.pred_num_heads = Int32(c.predNumHeads)
    o.num_enc_masks = Int32(c.numEncMasks); o.num_pred_masks = Int32(c.numPredMasks); o.min_keep = Int32(c.minKeep)
    o.allow_overlap = c.allowOverlap ? 1 : 0; o.full_grid = c.fullGrid ? 1 : 0
    o.enc_mask_scale = c.encMaskScale; o.pred_mask_scale = c.predMaskScale; o.aspect_ratio = c.aspectRatio
    o.start_lr = c.startLR; o.lr = c.lr; o.final_lr = c.finalLR
    o.weight_decay = c.weightDecay; o.final_weight_decay = c.finalWeightDecay
    o.ema_start = c.emaStart; o.ema_end = c.emaEnd
    o.warmup_steps = c.warmupSteps; o.total_steps = c.totalSteps
    o.seed = c.seed; o.n_threads = Int32(c.nThreads)
    o.ragged_context = c.raggedContext ? 1 : 0
    return o
}

/// Reads a caller's config, checking struct_size first. Values are validated by the engine.
func swiftConfig(_ p: UnsafePointer<ijepa_config>?, _ arg: String = "cfg") throws -> ModelConfig {
    guard let p else { throw invalid("\(arg) is NULL") }
    let size = Int(p.pointee.struct_size)
    if size < configSizeV1 {
        throw invalid("\(arg)->struct_size is \(size), smaller than sizeof(ijepa_config) = \(configSizeV1) of ABI 1; start from ijepa_config_default")
    }
    let o = p.pointee
    var c = ModelConfig()
    c.imageSize = Int(o.image_size); c.patchSize = Int(o.patch_size); c.inChans = Int(o.in_chans)
    c.embedDim = Int(o.embed_dim); c.depth = Int(o.depth); c.numHeads = Int(o.num_heads)
    c.mlpRatio = o.mlp_ratio
    c.predEmbedDim = Int(o.pred_embed_dim); c.predDepth = Int(o.pred_depth); c.predNumHeads = Int(o.pred_num_heads)
    c.numEncMasks = Int(o.num_enc_masks); c.numPredMasks = Int(o.num_pred_masks); c.minKeep = Int(o.min_keep)
    c.allowOverlap = o.allow_overlap != 0; c.fullGrid = o.full_grid != 0
    c.encMaskScale = o.enc_mask_scale; c.predMaskScale = o.pred_mask_scale; c.aspectRatio = o.aspect_ratio
    c.startLR = o.start_lr; c.lr = o.lr; c.finalLR = o.final_lr
    c.weightDecay = o.weight_decay; c.finalWeightDecay = o.final_weight_decay
    c.emaStart = o.ema_start; c.emaEnd = o.ema_end
    c.warmupSteps = o.warmup_steps; c.totalSteps = o.total_steps
    c.seed = o.seed; c.nThreads = Int(o.n_threads)
    if size >= configSizeRagged { c.raggedContext = o.ragged_context != 0 }
    return c
}

@c @implementation
public func ijepa_config_default(_ out: UnsafeMutablePointer<ijepa_config>?) -> Int32 {
    guarded {
        guard let out else { throw invalid("out is NULL") }
        try writeCovered(cConfig(ModelConfig()), to: out, "out", minimum: configSizeV1)
    }
}

@c @implementation
public func ijepa_config_preset(_ name: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<ijepa_config>?) -> Int32 {
    guarded {
        guard let name else { throw invalid("name is NULL") }
        guard let out else { throw invalid("out is NULL") }
        let n = String(cString: name)
        guard let c = ModelConfig.preset(n) else {
            throw invalid("unknown preset '\(n)'; known: \(ModelConfig.presetNames.joined(separator: ", "))")
        }
        try writeCovered(cConfig(c), to: out, "out", minimum: configSizeV1)
    }
}
