import Dispatch
import Glibc

/// How many threads a model's kernels may use, and a fork/join loop over index ranges.
/// Work smaller than `grain` items per chunk runs on the calling thread.
public struct Exec: Sendable {
    public var threads: Int

    public init(threads: Int) { self.threads = max(1, threads) }

    public static var hardwareThreads: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }

    /// Physical memory in bytes.
    public static var physicalMemory: Double { Double(sysconf(Int32(_SC_PHYS_PAGES))) * Double(sysconf(Int32(_SC_PAGESIZE))) }

    /// Calls `body(range)` on disjoint chunks covering 0..<n, in parallel when worthwhile.
    @inline(__always)
    public func forEach(_ n: Int, grain: Int = 1, _ body: (Range<Int>) -> Void) {
        forEachChunk(n, grain: grain) { _, r in body(r) }
    }

    /// Like `forEach`, also passing the chunk number (0..<threads) for per-thread scratch space.
    public func forEachChunk(_ n: Int, grain: Int = 1, _ body: (Int, Range<Int>) -> Void) {
        if n <= 0 { return }
        let chunks = min(threads, max(1, n / max(1, grain)))
        if chunks <= 1 { body(0, 0..<n); return }
        withoutActuallyEscaping(body) { body in
            let box = UncheckedBox(body)
            DispatchQueue.concurrentPerform(iterations: chunks) { c in
                let lo = n * c / chunks, hi = n * (c + 1) / chunks
                if lo < hi { box.value(c, lo..<hi) }
            }
        }
    }
}

/// Carries a non-Sendable value (a closure over raw pointers) into a fork/join region.
/// Safe here because every chunk writes disjoint memory and the region joins before returning.
struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ v: T) { value = v }
}
