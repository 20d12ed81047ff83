import Glibc

/// A float32 block on the heap that only grows: activations are allocated once per shape and
/// reused by every later step of that shape or smaller. Allocation goes through malloc so that a
/// refused allocation (RLIMIT_AS, cgroup, exhausted address space) is an
/// `IJEPAError.outOfMemory` for the caller, never a trap inside the user's process.
public final class FloatBuffer: @unchecked Sendable {
    public private(set) var ptr: UnsafeMutablePointer<Float>
    public private(set) var capacity: Int
    /// The file mapping ptr points into (a view of a mapped file), kept alive by this buffer.
    private var mapping: FileMapping?

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

    /// A view of `count` floats at `byteOffset` (a multiple of 4) in a file mapping: the file's
    /// page-cache pages are the floats, nothing is copied. Writes stay private to the process.
    init(viewing m: FileMapping, byteOffset: Int, count: Int) throws(IJEPAError) {
        guard byteOffset >= 0, byteOffset % MemoryLayout<Float>.alignment == 0, count >= 1,
              count <= (m.length - byteOffset) / MemoryLayout<Float>.stride else {
            throw IJEPAError.internalError("a view of \(count) floats at byte \(byteOffset) does not fit a mapping of \(m.length) bytes")
        }
        ptr = (m.base + byteOffset).bindMemory(to: Float.self, capacity: count)
        capacity = count
        mapping = m
    }

    deinit { if capacity > 0 && mapping == nil { free(ptr) } }

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
            if capacity > 0 && mapping == nil { free(ptr) }
            mapping = nil
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

/// A whole file mapped copy-on-write (MAP_PRIVATE): reads see the page cache, writes stay in
/// the process, and the file is never written. Unmapped when the last view goes. The file
/// must not shrink while mapped (reading a page past its new end raises SIGBUS); replacing it
/// by rename, as every save of this library does, leaves the mapped file intact.
final class FileMapping: @unchecked Sendable {   // immutable after init
    let base: UnsafeMutableRawPointer
    let length: Int

    init(_ f: OpenFile) throws(IJEPAError) {
        guard f.size > 0, let p = mmap(nil, f.size, PROT_READ | PROT_WRITE, MAP_PRIVATE, f.fd, 0), p != MAP_FAILED else {
            throw IJEPAError.io("cannot map \(f.path): \(String(cString: strerror(errno)))")
        }
        base = p
        length = f.size
    }

    deinit { munmap(base, length) }
}
