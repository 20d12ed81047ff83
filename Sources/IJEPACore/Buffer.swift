/// A float32 block on the heap that only grows: activations are allocated once per shape and
/// reused by every later step of that shape or smaller.
public final class FloatBuffer: @unchecked Sendable {
    public private(set) var ptr: UnsafeMutablePointer<Float>
    public private(set) var capacity: Int

    public init(count: Int = 0) {
        capacity = max(count, 1)
        ptr = .allocate(capacity: capacity)
        ptr.initialize(repeating: 0, count: capacity)
    }

    deinit { ptr.deallocate() }

    /// Makes room for `count` floats. Contents are not kept when it grows.
    @discardableResult
    public func ensure(_ count: Int) -> UnsafeMutablePointer<Float> {
        if count > capacity {
            ptr.deallocate()
            capacity = count
            ptr = .allocate(capacity: capacity)
            ptr.initialize(repeating: 0, count: capacity)
        }
        return ptr
    }

    public func zero(_ count: Int? = nil) {
        ptr.update(repeating: 0, count: min(count ?? capacity, capacity))
    }
}

public typealias FPtr = UnsafeMutablePointer<Float>
public typealias CFPtr = UnsafePointer<Float>
