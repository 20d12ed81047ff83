/// Named views into the flat parameter block (llm.c style). Offsets are in floats.
/// Names are the official state_dict keys (src/models/vision_transformer.py) with `encoder.` / `predictor.` prefixes;
/// the fixed position tables are not trainable and live outside the block.
public struct TensorInfo: Sendable, Equatable {
    public var name: String
    public var shape: [Int]
    public var offset: Int
    public var count: Int
    /// AdamW weight decay applies (official: 'bias' not in name and ndim != 1).
    public var decay: Bool

    public init(name: String, shape: [Int], offset: Int, count: Int, decay: Bool) {
        self.name = name; self.shape = shape; self.offset = offset; self.count = count; self.decay = decay
    }
}

/// Offsets of one transformer block's tensors.
public struct BlockOffsets: Sendable {
    public var norm1W = 0, norm1B = 0, qkvW = 0, qkvB = 0, projW = 0, projB = 0
    public var norm2W = 0, norm2B = 0, fc1W = 0, fc1B = 0, fc2W = 0, fc2B = 0
}

public struct EncoderOffsets: Sendable {
    public var patchW = 0, patchB = 0
    public var blocks: [BlockOffsets] = []
    public var normW = 0, normB = 0
}

public struct PredictorOffsets: Sendable {
    public var embedW = 0, embedB = 0, maskToken = 0
    public var blocks: [BlockOffsets] = []
    public var normW = 0, normB = 0, projW = 0, projB = 0
}

/// Sizes of a ViT encoder (patch embedding, blocks, final norm) as its weights define them,
/// plus what the weights cannot tell: the heads and the LayerNorm eps.
public struct EncoderShape: Sendable, Equatable {
    public var patchSize: Int, inChans: Int, embedDim: Int, depth: Int, numHeads: Int, mlpHidden: Int
    /// eps of every LayerNorm, final norm included (1e-6 in the official code).
    public var lnEps: Float
    public var patchDim: Int { inChans * patchSize * patchSize }

    public init(patchSize: Int, inChans: Int, embedDim: Int, depth: Int, numHeads: Int, mlpHidden: Int,
                lnEps: Float = blockLNEps) {
        (self.patchSize, self.inChans, self.embedDim, self.depth) = (patchSize, inChans, embedDim, depth)
        (self.numHeads, self.mlpHidden, self.lnEps) = (numHeads, mlpHidden, lnEps)
    }
}

extension ModelConfig {
    /// The encoder's sizes (context and target encoders share them).
    public var encoderShape: EncoderShape {
        EncoderShape(patchSize: patchSize, inChans: inChans, embedDim: embedDim, depth: depth, numHeads: numHeads,
                     mlpHidden: mlpHidden)
    }
}

public struct ParamLayout: Sendable {
    public private(set) var tensors: [TensorInfo] = []
    public private(set) var encoder = EncoderOffsets()
    public private(set) var predictor = PredictorOffsets()
    /// Floats in the encoder part (which starts at 0; the target encoder has the same layout).
    public private(set) var encoderCount = 0
    public private(set) var totalCount = 0

    /// The training model's layout: the encoder, then the predictor.
    public init(_ c: ModelConfig) {
        self.init(encoder: c.encoderShape)
        let Dp = c.predEmbedDim
        predictor.maskToken = add("predictor.mask_token", [1, 1, Dp])
        predictor.embedW = add("predictor.predictor_embed.weight", [Dp, c.embedDim])
        predictor.embedB = add("predictor.predictor_embed.bias", [Dp])
        for i in 0..<c.predDepth {
            predictor.blocks.append(block("predictor.predictor_blocks.\(i).", Dp, c.predMlpHidden))
        }
        predictor.normW = add("predictor.predictor_norm.weight", [Dp])
        predictor.normB = add("predictor.predictor_norm.bias", [Dp])
        predictor.projW = add("predictor.predictor_proj.weight", [c.embedDim, Dp])
        predictor.projB = add("predictor.predictor_proj.bias", [c.embedDim])
    }

    /// An encoder alone ("encoder.<official key>", fixed position table excluded), as the
    /// inference-only Encoder holds it.
    public init(encoder s: EncoderShape) {
        let D = s.embedDim
        encoder.patchW = add("encoder.patch_embed.proj.weight", [D, s.inChans, s.patchSize, s.patchSize])
        encoder.patchB = add("encoder.patch_embed.proj.bias", [D])
        for i in 0..<s.depth { encoder.blocks.append(block("encoder.blocks.\(i).", D, s.mlpHidden)) }
        encoder.normW = add("encoder.norm.weight", [D])
        encoder.normB = add("encoder.norm.bias", [D])
        encoderCount = totalCount
    }

    private mutating func add(_ name: String, _ shape: [Int]) -> Int {
        let off = totalCount
        let n = shape.reduce(1, *)
        let decay = !name.contains("bias") && shape.count != 1
        tensors.append(TensorInfo(name: name, shape: shape, offset: off, count: n, decay: decay))
        totalCount += n
        return off
    }

    private mutating func block(_ prefix: String, _ W: Int, _ hidden: Int) -> BlockOffsets {
        var b = BlockOffsets()
        b.norm1W = add(prefix + "norm1.weight", [W]); b.norm1B = add(prefix + "norm1.bias", [W])
        b.qkvW = add(prefix + "attn.qkv.weight", [3 * W, W]); b.qkvB = add(prefix + "attn.qkv.bias", [3 * W])
        b.projW = add(prefix + "attn.proj.weight", [W, W]); b.projB = add(prefix + "attn.proj.bias", [W])
        b.norm2W = add(prefix + "norm2.weight", [W]); b.norm2B = add(prefix + "norm2.bias", [W])
        b.fc1W = add(prefix + "mlp.fc1.weight", [hidden, W]); b.fc1B = add(prefix + "mlp.fc1.bias", [hidden])
        b.fc2W = add(prefix + "mlp.fc2.weight", [W, hidden]); b.fc2B = add(prefix + "mlp.fc2.bias", [W])
        return b
    }

    /// The encoder tensors renamed for the target-encoder buffer (`target_encoder.` prefix).
    public var targetTensors: [TensorInfo] {
        tensors.prefix { $0.offset < encoderCount }.map {
            var t = $0
            t.name = "target_encoder." + t.name.dropFirst("encoder.".count)
            return t
        }
    }

    public func tensor(named name: String) -> TensorInfo? { tensors.first { $0.name == name } }
}
