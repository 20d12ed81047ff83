import CIJEPAKernels

/// An inference encoder's block linears (qkv, proj, fc1, fc2) packed in place, once, for the
/// products of CIJEPAKernels: BLAS packs a weight on every call, a tenth of the time of one image
/// at a time. Packing permutes each weight's floats within its own tensor (same size, each panel
/// in the place of its rows), so the flat weight block keeps its layout and no second copy is
/// held; linearForward reads a packed weight when its scratch says so (PackScratch). The patch
/// embedding stays unpacked.
enum PackedWeights {
    /// Whether a shape's block linears are packed on this machine: a vector kernel family (AVX2
    /// or AVX-512; on other CPUs OpenBLAS's products are the faster ones) and every output width
    /// (3W, W, MLP width) a multiple of the panel width.
    static func applies(to s: EncoderShape) -> Bool {
        let panel = Int(IJK_PANEL)
        return ijk_isa() > IJK_ISA_C && s.embedDim % panel == 0 && s.mlpHidden % panel == 0
    }

    /// The block linears of `blocks` in w, as (offset, output features, input features).
    static func tensors(_ blocks: [BlockOffsets], _ s: EncoderShape) -> [(offset: Int, n: Int, k: Int)] {
        let W = s.embedDim, Hd = s.mlpHidden
        return blocks.flatMap { o in [(o.qkvW, 3 * W, W), (o.projW, W, W), (o.fc1W, Hd, W), (o.fc2W, W, Hd)] }
    }

    /// Packs the block linears of w in place, the tensors handed out to ex's threads (each
    /// packs a tensor panel by panel through a copy of one panel's rows). Returns false, w
    /// unchanged, when that scratch (IJK_PANEL × the widest input, per thread) cannot be allocated
    /// (the products then stay on BLAS).
    static func pack(_ w: FPtr, _ blocks: [BlockOffsets], _ s: EncoderShape, _ ex: Exec) -> Bool {
        let list = tensors(blocks, s), panel = Int(IJK_PANEL)
        let perThread = panel * max(s.embedDim, s.mlpHidden)
        guard let scratch = try? FloatBuffer(count: ex.threads * perThread) else { return false }
        struct Task: PoolTask {
            let w: FPtr, list: [(offset: Int, n: Int, k: Int)], scratch: FPtr, perThread: Int, panel: Int
            func callAsFunction(_ i: Int, _ worker: Int) {
                let t = list[i]
                ijk_pack_weights_in_place(w + t.offset, t.k, 0, t.n / panel, scratch + worker * perThread)
            }
        }
        ex.pool.run(tasks: list.count, Task(w: w, list: list, scratch: scratch.ptr, perThread: perThread, panel: panel))
        return true
    }
}
