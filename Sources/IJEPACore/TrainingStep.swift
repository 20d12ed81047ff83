/// The sizes of one forward_backward: B images, each with nenc contexts of at most Kc patches
/// (exactly Kc unless ragged) and npred target blocks of Kt patches.
struct StepSizes {
    let B: Int, nenc: Int, npred: Int, Kc: Int, Kt: Int
    /// Context sequences (context j of image b is sequence j·B + b).
    var contexts: Int { nenc * B }
    /// Predictor sequences (target block p of context c is sequence p·contexts + c).
    var predSeqs: Int { npred * nenc * B }
    /// Predicted target rows, Kt per predictor sequence.
    var targetRows: Int { predSeqs * Kt }
}

/// What the context encoder's forward keeps for its backward.
struct ContextActs {
    /// Gathered patches [Mc, C·p·p], the last block's output [Mc, D], the final-normed output z [Mc, D].
    let cols: CFPtr, last: CFPtr, z: CFPtr
}

/// What the predictor's forward keeps for its backward.
struct PredictorActs {
    /// The last block's output (mask-token rows only) [Mt, Dp], its norm and statistics, the
    /// projected prediction [Mt, D].
    let rows: CFPtr, normed: CFPtr, mean: CFPtr, rstd: CFPtr, out: FPtr
}

// One official training step, phase by phase (forward and backward of each part side by side):
//   targets   = layer_norm(target_encoder(images))[target patches]      [Mt, D]   (no gradient)
//   z         = encoder(images[context patches])                       [Mc, D]
//   pred      = predictor(z, mask tokens at the target patches)          [Mt, D]
//   loss      = smooth_l1(pred, targets), mean over Mt·D
//   gradients = backward through the predictor, then the context encoder
// Mc = Σ context lengths (nenc·B·Kc when uniform), Mt = npred·nenc·B·Kt.
extension Model {
    /// Forward and backward of the I-JEPA loss on one batch; overwrites the gradients with
    /// weight × this batch's gradient, or (accumulate) adds that to the gradients of the
    /// previous forwardBackward of the same step: micro-batches of a larger batch, each weighted
    /// by its share of the loss elements (b / B), give that batch's gradient. images: [batch, C,
    /// H, W] float32, normalized. Returns this batch's loss; `lastLoss` is the weighted sum over
    /// the step's batches. On any error the gradients are unspecified and none are pending.
    @discardableResult
    public func forwardBackward(images: UnsafePointer<Float>, batch B: Int, masks: MaskSet, accumulate: Bool = false,
                                weight: Float = 1) throws -> Float {
        let pending = gradsReady
        gradsReady = false
        if accumulate && !pending {
            throw IJEPAError.state("accumulate needs the gradients of a previous forward_backward of this step (the first batch of a step does not accumulate)")
        }
        if !(weight.isFinite && weight > 0) { throw IJEPAError.invalidArgument("weight must be finite and > 0, got \(weight)") }
        try Self.checkBatch(B)
        try checkMasks(masks, batch: B)
        try checkMemory(activationFloats(batch: B, kEnc: masks.kEnc, kPred: masks.kPred))
        let c = config
        try Self.checkFinite(images, B * c.inChans * c.imageSize * c.imageSize, "images")
        if B * c.numPatches > Int(Int32.max) {
            throw IJEPAError.shape("batch × patches (\(B) × \(c.numPatches)) must be below 2^31")
        }
        setBLASThreads()
        let s = StepSizes(B: B, nenc: masks.numEnc, npred: masks.numPred, Kc: masks.kEnc, Kt: masks.kPred)
        lastShape = (B, s.Kc, s.Kt)

        let targetRows = try targetPass(images, masks, s)                    // [Mt, D]
        layoutSequences(masks, s)
        let ctx = try contextForward(images, s)                              // z [Mc, D]
        let pa = try predictorForward(ctx.z, masks, s)                       // pred [Mt, D]

        // loss, and its gradient written over the targets (their last use) unless tests keep them
        let Mt = s.targetRows, D = c.embedDim
        let dPred = keepTargets ? try dPredOut.ensure(Mt * D) : targetRows
        lastLossDouble = smoothL1(pa.out, targetRows, Mt * D, dPred)
        let loss = Float(lastLossDouble)
        if !loss.isFinite { throw IJEPAError.numeric("the loss is not finite (\(loss))") }
        lastLoss = accumulate ? lastLoss + weight * loss : weight * loss
        if weight != 1 { for i in 0..<(Mt * D) { dPred[i] *= weight } }

        // backward: every parameter gradient below adds into the gradient buffer
        if !accumulate {
            struct Zero: ChunkBody {
                let g: FPtr
                func callAsFunction(_: Int, _ r: Range<Int>) { (g + r.lowerBound).update(repeating: 0, count: r.count) }
            }
            exec.forEach(layout.totalCount, grain: 1 << 18, Zero(g: grads.ptr))
        }
        let dz = try predictorBackward(CFPtr(dPred), pa, ctx, s)           // [Mc, D]
        try contextBackward(dz, ctx, s)
        try checkGradientsFinite()
        gradsReady = true
        return loss
    }

    // MARK: 1. targets

    /// Target encoder on the full images → layer_norm (no affine, eps 1e-5) → the rows of every
    /// target block, in predictor-sequence order: `targets` [Mt, D]. Only the patches some target
    /// block uses are outputs: the last block and the final norm run on those rows alone (every
    /// patch is still a key and value of its attention).
    func targetPass(_ images: UnsafePointer<Float>, _ masks: MaskSet, _ s: StepSizes) throws -> FPtr {
        let c = config, ex = exec, B = s.B, N = c.numPatches, D = c.embedDim, Kt = s.Kt
        let tw = CFPtr(target.ptr), E = layout.encoder, pred = masks.pred
        // selected rows of each image: selRows[selOff[b]..<selOff[b+1]] (ascending); selIndex[b·N + n] is
        // patch n's row among them
        selOff.reserveCapacity(B + 1); selRows.reserveCapacity(B * N); selIndex.reserveCapacity(B * N)
        selOff.removeAll(keepingCapacity: true); selRows.removeAll(keepingCapacity: true)
        selIndex.removeAll(keepingCapacity: true)
        selIndex.append(contentsOf: repeatElement(-1, count: B * N))
        for p in 0..<s.npred { for b in 0..<B { for t in 0..<Kt { selIndex[b * N + Int(pred[(p * B + b) * Kt + t])] = 0 } } }
        selOff.append(0)
        for b in 0..<B {
            for n in 0..<N where selIndex[b * N + n] == 0 {
                selIndex[b * N + n] = Int32(selRows.count)
                selRows.append(Int32(n))
            }
            selOff.append(selRows.count)
        }
        let Ms = selRows.count
        _ = try embedFullImages(images: images, batch: B, weights: tw)
        let selected = try targetOut.ensure(Ms * D)                         // [Ms, D]
        selOff.withUnsafeBufferPointer { so in
            selRows.withUnsafeBufferPointer { sr in
                targetStack.forwardInferenceSelected(params: tw, blocks: E.blocks, selOff: so.baseAddress!,
                                                     selRows: sr.baseAddress!, out: selected, ex)
            }
        }
        layerNormForward(selected, nil, nil, selected, tw + E.normW, tw + E.normB, Ms, D, blockLNEps, ex)
        lastTargetRows = Ms
        // (gathered first, then normalized in place: the same floats as normalizing all B·N rows,
        // without a second [B·N, D] buffer)
        let out = try targets.ensure(s.targetRows * D)
        for j in 0..<s.predSeqs {
            let p = j / s.contexts, b = j % B
            for t in 0..<Kt {
                let n = Int(pred[(p * B + b) * Kt + t])
                (out + (j * Kt + t) * D).update(from: selected + Int(selIndex[b * N + n]) * D, count: D)
            }
        }
        layerNormForward(out, nil, nil, out, nil, nil, s.targetRows, D, 1e-5, ex)
        return out
    }

    // MARK: sequence layout

    /// Context row c = j·B + b (context j of image b) has ctxLen[c] tokens at rows ctxOff[c]..<
    /// of the context encoder; predictor sequence q = p·contexts + c (target block p) holds
    /// context c, then the Kt mask tokens, at rows predOff[q]..<. With uniform masks every
    /// context has Kc tokens; with ragged ones each keeps its own length.
    func layoutSequences(_ masks: MaskSet, _ s: StepSizes) {
        let nc = s.contexts, Kc = s.Kc, B = s.B, enc = masks.enc
        // (capacity for contexts of the longest length of these masks, which the memory check
        // covered; kept, so later batches of no larger shape do not allocate)
        ctxIdx.reserveCapacity(nc * Kc); ctxImage.reserveCapacity(nc * Kc)
        ctxLen.reserveCapacity(nc); ctxOff.reserveCapacity(nc + 1)
        predLen.reserveCapacity(s.predSeqs); predOff.reserveCapacity(s.predSeqs + 1)
        ctxLen.removeAll(keepingCapacity: true); ctxOff.removeAll(keepingCapacity: true)
        ctxIdx.removeAll(keepingCapacity: true); ctxImage.removeAll(keepingCapacity: true)
        predLen.removeAll(keepingCapacity: true); predOff.removeAll(keepingCapacity: true)
        ctxOff.append(0)
        for r in 0..<nc {
            let l = masks.contextLength(r)
            ctxLen.append(l); ctxOff.append(ctxOff[r] + l)
            for i in 0..<l { ctxIdx.append(enc[r * Kc + i]); ctxImage.append(Int32(r % B)) }
        }
        predOff.append(0)
        for q in 0..<s.predSeqs {
            let l = ctxLen[q % nc] + s.Kt
            predLen.append(l); predOff.append(predOff[q] + l)
        }
        lastCtxRows = ctxOff[nc]
    }

    // MARK: 2. context encoder

    /// z = norm(blocks(patch_embed(kept patches) + pos)), the kept patches gathered before the
    /// blocks: ctxOut [Mc, D].
    func contextForward(_ images: UnsafePointer<Float>, _ s: StepSizes) throws -> ContextActs {
        let c = config, ex = exec, D = c.embedDim, P = c.patchDim, Mc = lastCtxRows
        let w = CFPtr(params.ptr), E = layout.encoder
        let encShape = StackShape(S: s.contexts, T: s.Kc, W: D, H: c.numHeads, hidden: c.mlpHidden, depth: c.depth)
        try encStack.prepare(encShape, lengths: ctxLen, training: true, threads: ex.threads)
        let cols = try colsC.ensure(Mc * P)                                  // [Mc, C·p·p]
        ctxIdx.withUnsafeBufferPointer { e in
            ctxImage.withUnsafeBufferPointer { im in
                gatherPatches(cols, images, rows: Mc, imageIndex: { Int(im[$0]) }, patchIndex: { Int(e[$0]) },
                              C: c.inChans, height: c.imageSize, width: c.imageSize, patch: c.patchSize)
            }
        }
        let x0 = encStack.input                                              // [Mc, D]
        linearForward(x0, cols, w + E.patchW, w + E.patchB, Mc, P, D, ex)
        ctxIdx.withUnsafeBufferPointer { e in
            posEmbed.withUnsafeBufferPointer { pe in
                for r in 0..<Mc {
                    let n = Int(e[r]), row = x0 + r * D
                    for i in 0..<D { row[i] += pe[n * D + i] }
                }
            }
        }
        let last = encStack.forward(params: w, blocks: E.blocks, ex)         // [Mc, D]
        let z = try ctxOut.ensure(Mc * D)                                    // [Mc, D]
        layerNormForward(z, try ctxMean.ensure(Mc), try ctxRstd.ensure(Mc), last, w + E.normW, w + E.normB, Mc, D,
                         blockLNEps, ex)
        return ContextActs(cols: CFPtr(cols), last: CFPtr(last), z: CFPtr(z))
    }

    /// Backward of contextForward from dz [Mc, D] into the encoder's parameter gradients.
    func contextBackward(_ dz: CFPtr, _ a: ContextActs, _ s: StepSizes) throws {
        let c = config, ex = exec, D = c.embedDim, P = c.patchDim, Mc = lastCtxRows
        let w = CFPtr(params.ptr), g = grads.ptr, E = layout.encoder
        // (the encoder's backward scratch is the predictor's: the predictor's input gradient is consumed)
        let dlast = try encStack.prepareBackward()                           // [Mc, D]
        try layerNormBackward(dlast, g + E.normW, g + E.normB, dz, a.last, ctxMean.ptr, ctxRstd.ptr, w + E.normW,
                              Mc, D, accumulate: false, ex)
        let dx0 = try encStack.backward(params: w, grads: g, blocks: E.blocks, ex)   // [Mc, D]
        linearBackward(nil, g + E.patchW, g + E.patchB, dx0, a.cols, w + E.patchW, Mc, P, D, ex)
    }

    // MARK: 3. predictor

    /// Each predictor sequence: predictor_embed(its context) + pos, then the mask token + pos at
    /// each target patch; blocks (the last one on the mask-token rows only), norm, projection:
    /// predOut [Mt, D].
    func predictorForward(_ z: CFPtr, _ masks: MaskSet, _ s: StepSizes) throws -> PredictorActs {
        let c = config, ex = exec, D = c.embedDim, Dp = c.predEmbedDim, Mc = lastCtxRows, Mt = s.targetRows
        let nc = s.contexts, B = s.B, Kt = s.Kt, pred = masks.pred
        let w = CFPtr(params.ptr), PR = layout.predictor
        let predShape = StackShape(S: s.predSeqs, T: s.Kc + Kt, W: Dp, H: c.effectivePredHeads, hidden: c.predMlpHidden,
                                   depth: c.predDepth)
        // (only the mask-token rows are outputs: the last block skips the context rows' work)
        try predStack.prepare(predShape, lengths: predLen, training: true, threads: ex.threads, outputTail: Kt)
        let xp = predStack.input                                             // [Σ predLen, Dp]
        let embedded = try predEmbed.ensure(Mc * Dp)                         // [Mc, Dp]
        linearForward(embedded, z, w + PR.embedW, w + PR.embedB, Mc, D, Dp, ex)
        let cLen = ctxLen, cOff = ctxOff, pOff = predOff
        predPosEmbed.withUnsafeBufferPointer { pp in
            ctxIdx.withUnsafeBufferPointer { e in
                for r in 0..<Mc {
                    let n = Int(e[r]); let row = embedded + r * Dp
                    for i in 0..<Dp { row[i] += pp[n * Dp + i] }
                }
            }
            let mt = w + PR.maskToken
            for j in 0..<s.predSeqs {
                let p = j / nc, cidx = j % nc, b = j % B
                (xp + pOff[j] * Dp).update(from: embedded + cOff[cidx] * Dp, count: cLen[cidx] * Dp)
                for t in 0..<Kt {
                    let n = Int(pred[(p * B + b) * Kt + t])
                    let row = xp + (pOff[j] + cLen[cidx] + t) * Dp
                    for i in 0..<Dp { row[i] = mt[i] + pp[n * Dp + i] }
                }
            }
        }
        let rows = CFPtr(predStack.forward(params: w, blocks: PR.blocks, ex))   // [Mt, Dp]: sequence j's targets at j·Kt
        let pn = try predNorm.ensure(Mt * Dp), pm = try predMean.ensure(Mt), pr = try predRstd.ensure(Mt)
        layerNormForward(pn, pm, pr, rows, w + PR.normW, w + PR.normB, Mt, Dp, blockLNEps, ex)
        let out = try predOut.ensure(Mt * D)                                 // [Mt, D]
        linearForward(out, pn, w + PR.projW, w + PR.projB, Mt, Dp, D, ex)
        return PredictorActs(rows: rows, normed: CFPtr(pn), mean: CFPtr(pm), rstd: CFPtr(pr), out: out)
    }

    /// Backward of predictorForward from dPred [Mt, D] into the predictor's parameter gradients;
    /// returns dz [Mc, D], the gradient of the context encoder's output.
    func predictorBackward(_ dPred: CFPtr, _ a: PredictorActs, _ ctx: ContextActs, _ s: StepSizes) throws -> CFPtr {
        let c = config, ex = exec, D = c.embedDim, Dp = c.predEmbedDim, Mc = lastCtxRows, Mt = s.targetRows
        let nc = s.contexts, Kt = s.Kt
        let w = CFPtr(params.ptr), g = grads.ptr, PR = layout.predictor
        let dpn = try dPredNorm.ensure(Mt * Dp)                              // [Mt, Dp]
        linearBackward(dpn, g + PR.projW, g + PR.projB, dPred, a.normed, w + PR.projW, Mt, Dp, D, ex)
        // the predictor's output gradient: its mask-token rows, compact (the stack's output tail)
        let dlast = try predStack.prepareBackward()
        try layerNormBackward(dlast, g + PR.normW, g + PR.normB, dpn, a.rows, a.mean, a.rstd, w + PR.normW, Mt, Dp,
                              accumulate: false, ex)
        let dxp = try predStack.backward(params: w, grads: g, blocks: PR.blocks, ex)   // [Σ predLen, Dp]
        // mask token: Σ over all target rows; context rows: Σ over the npred copies of each context
        let dmt = g + PR.maskToken
        let dEmbedded = try predEmbedGrad.ensure(Mc * Dp)                    // [Mc, Dp]
        dEmbedded.update(repeating: 0, count: Mc * Dp)
        let cLen = ctxLen, cOff = ctxOff, pOff = predOff
        for j in 0..<s.predSeqs {
            let cidx = j % nc
            let src = dxp + pOff[j] * Dp, dst = dEmbedded + cOff[cidx] * Dp
            for i in 0..<(cLen[cidx] * Dp) { dst[i] += src[i] }
            for t in 0..<Kt {
                let row = dxp + (pOff[j] + cLen[cidx] + t) * Dp
                for i in 0..<Dp { dmt[i] += row[i] }
            }
        }
        let dz = try dCtxOut.ensure(Mc * D)                                  // [Mc, D]
        linearBackward(dz, g + PR.embedW, g + PR.embedB, dEmbedded, ctx.z, w + PR.embedW, Mc, D, Dp, ex)
        return CFPtr(dz)
    }

    // MARK: steps

    /// forwardBackward with masks sampled from the model's collator when `masks` is nil (ragged
    /// contexts when `ragged`, nil = the config's raggedContext). The images are checked before
    /// sampling, and on any error the collator is restored, so a failed call leaves the mask
    /// stream exactly where it was.
    @discardableResult
    public func forwardBackward(images: UnsafePointer<Float>, batch: Int, masks: MaskSet?, ragged: Bool? = nil,
                                accumulate: Bool = false, weight: Float = 1) throws -> Float {
        if let masks {
            return try forwardBackward(images: images, batch: batch, masks: masks, accumulate: accumulate, weight: weight)
        }
        return try restoringOnError {
            try Self.checkBatch(batch)
            let c = config
            try Self.checkFinite(images, batch * c.inChans * c.imageSize * c.imageSize, "images")
            try collator.sample(batch: batch, ragged: ragged ?? config.raggedContext, into: &sampledMasks,
                                scratch: &samplerScratch)
            return try forwardBackward(images: images, batch: batch, masks: sampledMasks, accumulate: accumulate, weight: weight)
        }
    }

    /// Runs body; on any error the mask stream is put back as it was and no gradients are
    /// pending: a failed call consumes no masks and leaves nothing for optimizer_step.
    func restoringOnError<R>(_ body: () throws -> R) throws -> R {
        let saved = collator
        do { return try body() } catch {
            collator = saved
            gradsReady = false
            throw error
        }
    }

    /// One full official training step; masks nil = sample from the model's collator. On any
    /// error nothing is updated: parameters, optimizer state, target encoder, step counter and
    /// mask stream are as they were.
    public func trainStep(images: UnsafePointer<Float>, batch: Int, masks: MaskSet? = nil, ragged: Bool? = nil) throws -> StepStats {
        try restoringOnError {
            try forwardBackward(images: images, batch: batch, masks: masks, ragged: ragged)
            return try optimizerStep()
        }
    }

    /// One optimizer step over `batch` images run as micro-batches of at most `microBatch`
    /// (gradient accumulation): the masks of the whole batch come from one draw (masks nil:
    /// the collator, ragged as `ragged` or the config says; the official cut to the batch
    /// minimum over the whole batch), each micro-batch takes its images' rows and adds its
    /// gradient weighted by its share of the batch, so the step equals one step of `batch`
    /// images (to float rounding) with the activation memory of one micro-batch. On any error
    /// nothing is updated and the mask stream is as it was.
    public func trainStep(images: UnsafePointer<Float>, batch: Int, microBatch: Int, masks: MaskSet? = nil,
                          ragged: Bool? = nil) throws -> StepStats {
        if microBatch < 1 { throw IJEPAError.invalidArgument("micro_batch must be >= 1, got \(microBatch)") }
        try Self.checkBatch(batch)
        let c = config
        let perImage = c.inChans * c.imageSize * c.imageSize
        try Self.checkFinite(images, batch * perImage, "images")
        return try restoringOnError {
            let all: MaskSet
            if let masks {
                try checkMasks(masks, batch: batch)
                all = masks
            } else {
                all = try collator.sample(batch: batch, ragged: ragged ?? config.raggedContext)
            }
            var b0 = 0
            while b0 < batch {
                let n = min(microBatch, batch - b0)
                try forwardBackward(images: images + b0 * perImage, batch: n, masks: all.rows(b0, n), accumulate: b0 > 0,
                                    weight: Float(Double(n) / Double(batch)))
                b0 += n
            }
            return try optimizerStep()
        }
    }
}
