import Glibc

/// A float32 block on the heap that only grows: activations are allocated once per shape and
/// reused by every later step of that shape or smaller. Allocation goes through malloc so that a
/// refused allocation (RLIMIT_AS, cgroup, exhausted address space) is an
/// `IJEPAError.outOfMemory` for the caller, never a trap inside the user's process.
public final class FloatBuffer: @unchecked Sendable {
    public private(set) var ptr: UnsafeMutablePointer<Float>
    public private(set) var capacity: Int

    /// A buffer of `count` zeros; throws `.outOfMemory` when the allocation is refused.
    public init(count: Int = 0) throws(IJEPAError) {
        let n = max(count, 1)
        ptr = try Self.allocateZeroed(n)
        capacity = n
    }

    /// An empty buffer that grows on `ensure` (nothing is allocated until then).
    public init() {
        ptr = UnsafeMutablePointer<Float>(bitPattern: MemoryLayout<Float>.alignment)!  // never read: capacity 0
        capacity = 0
    }

    deinit { if capacity > 0 { free(ptr) } }

    private static func allocateZeroed(_ n: Int) throws(IJEPAError) -> UnsafeMutablePointer<Float> {
        let (bytes, overflow) = n.multipliedReportingOverflow(by: MemoryLayout<Float>.stride)
        guard !overflow, let raw = calloc(1, bytes) else {
            throw IJEPAError.outOfMemory("could not allocate \(n) floats (\(overflow ? "size overflows" : "\(n / 262_144) MiB refused by the system")); use a smaller batch or model")
        }
        return raw.bindMemory(to: Float.self, capacity: n)
    }

    /// Makes room for `count` floats; throws `.outOfMemory` (keeping the old block) when the
    /// allocation is refused. Contents are not kept when it grows.
    @discardableResult
    public func ensure(_ count: Int) throws(IJEPAError) -> UnsafeMutablePointer<Float> {
        if count > capacity {
            let fresh = try Self.allocateZeroed(count)
            if capacity > 0 { free(ptr) }
            ptr = fresh
            capacity = count
        }
        return ptr
    }

    public func zero(_ count: Int? = nil) {
        ptr.update(repeating: 0, count: min(count ?? capacity, capacity))
    }
}

public typealias FPtr = UnsafeMutablePointer<Float>
public typealias CFPtr = UnsafePointer<Float>
