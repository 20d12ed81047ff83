import Glibc

/// The official per-iteration schedules (src/utils/schedulers.py, train.py).
/// `step` is 1-based: the value used by the step-th iteration.
public enum Schedules {
    /// WarmupCosineSchedule: linear warmup start_lr → lr over `warmup` steps, then cosine to final_lr
    /// over total − warmup steps (T_max = total − warmup), floored at final_lr.
    public static func learningRate(step: Int64, startLR: Double, refLR: Double, finalLR: Double,
                                    warmup: Int64, total: Int64) -> Double {
        if step < warmup {
            let progress = Double(step) / Double(max(1, warmup))
            return startLR + progress * (refLR - startLR)
        }
        let tMax = total - warmup
        let progress = Double(step - warmup) / Double(max(1, tMax))
        return max(finalLR, finalLR + (refLR - finalLR) * 0.5 * (1 + cos(Double.pi * progress)))
    }

    /// CosineWDSchedule: ref_wd → final_wd along a half cosine over `total` steps, clamped at final.
    public static func weightDecay(step: Int64, refWD: Double, finalWD: Double, total: Int64) -> Double {
        let progress = Double(step) / Double(max(1, total))
        let wd = finalWD + (refWD - finalWD) * 0.5 * (1 + cos(Double.pi * progress))
        return finalWD <= refWD ? max(finalWD, wd) : min(finalWD, wd)
    }

    /// EMA momentum generator: m_i = ema0 + i·(ema1 − ema0)/total, i = step − 1, one per iteration;
    /// past the end of the official generator (i > total) it stays at ema1.
    public static func momentum(step: Int64, start: Double, end: Double, total: Int64) -> Double {
        let i = max(0, step - 1)
        if i > total { return end }
        return start + Double(i) * (end - start) / Double(max(1, total))
    }

    public static func learningRate(step: Int64, _ c: ModelConfig) -> Double {
        learningRate(step: step, startLR: Double(c.startLR), refLR: Double(c.lr), finalLR: Double(c.finalLR),
                     warmup: c.warmupSteps, total: c.totalSteps)
    }
    public static func weightDecay(step: Int64, _ c: ModelConfig) -> Double {
        weightDecay(step: step, refWD: Double(c.weightDecay), finalWD: Double(c.finalWeightDecay), total: c.totalSteps)
    }
    public static func momentum(step: Int64, _ c: ModelConfig) -> Double {
        momentum(step: step, start: Double(c.emaStart), end: Double(c.emaEnd), total: c.totalSteps)
    }
}
