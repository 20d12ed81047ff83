// The second half of a step: schedules, AdamW on the encoder and predictor, EMA of the target
// encoder, in the official order.
extension Model {
    /// Schedules advance, AdamW on encoder + predictor, EMA of the target encoder (official order).
    /// Consumes the gradients of the last forwardBackward (possibly all-reduced by the caller).
    public func optimizerStep() throws -> StepStats {
        guard gradsReady else {
            throw IJEPAError.state("optimizer_step needs gradients: call forward_backward first (each forward_backward feeds one optimizer step)")
        }
        // the step stays below stateCounterLimit, so every state a step leaves saves and loads
        guard step < stateCounterLimit - 1 else {
            throw IJEPAError.state("the step counter cannot advance past \(step); nothing was updated")
        }
        let g = CFPtr(grads.ptr)
        let next = step + 1
        let lr = overrideLR >= 0 ? Double(overrideLR) : Schedules.learningRate(step: next, config)
        let wd = overrideWD >= 0 ? Double(overrideWD) : Schedules.weightDecay(step: next, config)
        let m = overrideEMA >= 0 ? Double(overrideEMA) : Schedules.momentum(step: next, config)
        let scheduleOK = lr.isFinite && wd.isFinite && m.isFinite && m <= 1 && m >= 0
        let p = params.ptr, mm = adamM.ptr, vv = adamV.ptr
        let ex = exec
        let tensors = layout.tensors
        // One parallel pass (a task per tensor): the gradient's sum of squares and a dry run of the update
        // (an update that would overflow, e.g. a huge lr or weight decay, is an error with
        // nothing changed; with finite parameters and m in [0, 1] the EMA stays finite).
        struct Check: ChunkBody {
            let tensors: [TensorInfo], g: CFPtr, p: CFPtr, m: CFPtr, v: CFPtr, ok: FPtr, sqs: UnsafeMutablePointer<Double>
            let scheduleOK: Bool, lr: Double, wd: Double, step: Int64, adam: AdamWHyper
            func callAsFunction(_: Int, _ r: Range<Int>) {
                for ti in r {
                    let t = tensors[ti]
                    let (finite, sq) = adamwCheck(p + t.offset, g + t.offset, m + t.offset, v + t.offset, t.count,
                                                  lr: lr, weightDecay: t.decay ? wd : 0, step: step, adam)
                    sqs[ti] = sq
                    ok[ti] = scheduleOK && sq.isFinite && finite ? 1 : 0
                }
            }
        }
        let ok = tensorFlags.ptr, sqs = tensorSquares
        ex.forEachItem(tensors.count, Check(tensors: tensors, g: g, p: p, m: mm, v: vv, ok: ok, sqs: sqs,
                                        scheduleOK: scheduleOK, lr: lr, wd: wd, step: next, adam: adam))
        var sq = 0.0
        for ti in 0..<tensors.count { sq += sqs[ti] }
        if !sq.isFinite { throw IJEPAError.numeric("gradients contain NaN or Inf; nothing was updated") }
        if !scheduleOK {
            throw IJEPAError.numeric("schedule values are not usable (lr \(lr), weight decay \(wd), momentum \(m)); nothing was updated")
        }
        if let bad = (0..<tensors.count).first(where: { ok[$0] != 1 }) {
            throw IJEPAError.numeric("this update (lr \(lr), weight decay \(wd)) would make \(tensors[bad].name) or its AdamW moments non-finite; nothing was updated")
        }
        // AdamW per tensor, then (while the tensor is in cache) the EMA of its encoder part:
        // θ̄ ← m·θ̄ + (1−m)·θ, with the updated θ as in the official order
        struct Update: ChunkBody {
            let tensors: [TensorInfo], g: CFPtr, p: FPtr, m: FPtr, v: FPtr, lr: Double, wd: Double, step: Int64
            let adam: AdamWHyper, target: FPtr, encoderCount: Int, ema: Float, omm: Float
            func callAsFunction(_: Int, _ r: Range<Int>) {
                for ti in r {
                    let t = tensors[ti]
                    adamwUpdate(p + t.offset, g + t.offset, m + t.offset, v + t.offset, t.count,
                                lr: lr, weightDecay: t.decay ? wd : 0, step: step, adam)
                    for j in t.offset..<min(t.offset + t.count, max(t.offset, encoderCount)) {
                        target[j] = target[j] * ema + omm * p[j]
                    }
                }
            }
        }
        ex.forEachItem(tensors.count, Update(tensors: tensors, g: g, p: p, m: mm, v: vv, lr: lr, wd: wd, step: next, adam: adam,
                                         target: target.ptr, encoderCount: layout.encoderCount,
                                         ema: Float(m), omm: Float(1 - m)))
        step = next
        gradsReady = false
        var s = StepStats()
        s.step = next; s.loss = lastLoss; s.lr = Float(lr); s.weightDecay = Float(wd)
        s.emaMomentum = Float(m); s.gradNorm = Float(sq.squareRoot())
        return s
    }
}
