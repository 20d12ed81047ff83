import CIJEPA
import Glibc
import IJEPACore
import Synchronization

// Status codes, the per-thread last-error message, and the wrapper that turns every thrown
// error into a status: nothing thrown inside the library crosses the C boundary.


/// Process-lifetime C strings (never freed).
func permanentCString(_ s: String) -> UnsafePointer<CChar> { UnsafePointer(strdup(s)!) }

nonisolated(unsafe) let versionCString = permanentCString(libraryVersionString)
nonisolated(unsafe) let emptyCString = permanentCString("")
nonisolated(unsafe) let statusCStrings: [UnsafePointer<CChar>] = [
    "ok", "invalid argument", "shape mismatch", "out of memory", "I/O error", "bad file format",
    "invalid state", "numeric error (NaN or Inf)", "internal error",
].map(permanentCString)
nonisolated(unsafe) let unknownStatusCString = permanentCString("unknown status")

/// Thread-local last error: a malloc'd C string per thread, freed when the thread exits.
let lastErrorKey: pthread_key_t = {
    var key = pthread_key_t()
    pthread_key_create(&key) { p in free(p) }
    return key
}()

func setLastError(_ message: String) {
    let old = pthread_getspecific(lastErrorKey)
    pthread_setspecific(lastErrorKey, strdup(message))
    free(old)
}

func currentLastError() -> UnsafePointer<CChar> {
    guard let p = pthread_getspecific(lastErrorKey) else { return emptyCString }
    return UnsafePointer(p.assumingMemoryBound(to: CChar.self))
}

/// Runs `body`, returning IJEPA_OK or the error's status with its message recorded.
@inline(__always)
func guarded(_ body: () throws -> Void) -> Int32 {
    do {
        try body()
        return 0
    } catch let e as IJEPAError {
        setLastError(e.message)
        return e.status
    } catch {
        setLastError("internal error: \(error)")
        return -8
    }
}

func invalid(_ m: String) -> IJEPAError { .invalidArgument(m) }

@c @implementation
public func ijepa_version() -> UnsafePointer<CChar>? { versionCString }

@c @implementation
public func ijepa_abi_version() -> UInt32 { UInt32(IJEPA_ABI_VERSION) }

@c @implementation
public func ijepa_status_string(_ status: Int32) -> UnsafePointer<CChar>? {
    let i = -Int(status)
    return (0..<statusCStrings.count).contains(i) ? statusCStrings[i] : unknownStatusCString
}

@c @implementation
public func ijepa_last_error() -> UnsafePointer<CChar>? { currentLastError() }

// MARK: logging

struct LogTarget: @unchecked Sendable {
    let cb: ijepa_log_callback
    let user: UnsafeMutableRawPointer?
}

@c @implementation
public func ijepa_log_set(_ cb: ijepa_log_callback?, _ user_data: UnsafeMutableRawPointer?) {
    guard let cb else { Log.setSink(nil); return }
    let t = LogTarget(cb: cb, user: user_data)
    Log.setSink { level, message in
        message.withCString { t.cb(level.rawValue, $0, t.user) }
    }
}

/// Live objects of one kind by handle. A handle is an id that is never reused (not an
/// address), so a freed handle can never alias a later object: using it is an error, not a
/// crash. Ids step by 16 from 0x10000 plus a per-kind slot (0...15), so handles look like
/// aligned pointers, are never NULL, and a handle of one kind is never a live one of another.
final class HandleTable<T: AnyObject & Sendable>: Sendable {
    private let state = Mutex<(next: UInt, items: [UInt: T])>((1, [:]))
    let kind: String, origin: String, slot: UInt

    init(kind: String, origin: String, slot: UInt) { (self.kind, self.origin, self.slot) = (kind, origin, slot) }

    func register(_ x: T) -> OpaquePointer {
        let key = state.withLock { s -> UInt in
            let k = 0x10000 &+ s.next &* 16 &+ slot
            s.next &+= 1
            s.items[k] = x
            return k
        }
        return OpaquePointer(bitPattern: key)!
    }

    func lookup(_ p: OpaquePointer?, _ arg: String) throws -> T {
        guard let p else { throw invalid("\(arg) is NULL") }
        let key = UInt(bitPattern: p)
        guard let x = state.withLock({ $0.items[key] }) else {
            throw invalid("\(arg) is not a live \(kind) (already freed, or not from \(origin))")
        }
        return x
    }

    /// Forgets the handle (NULL and unknown handles are ignored).
    func remove(_ p: OpaquePointer?) {
        guard let p else { return }
        _ = state.withLock { $0.items.removeValue(forKey: UInt(bitPattern: p)) }
    }
}

/// Writes `value` to `out` up to the caller's struct_size (read from `out` first; at least
/// `minimum`, by default the 4 bytes of struct_size itself): a program compiled against an older
/// header gets only the fields it knows. struct_size is written as the size actually filled.
func writeCovered<T>(_ value: T, to out: UnsafeMutablePointer<T>, _ name: String, minimum: Int = 4) throws {
    let callerSize = UnsafeRawPointer(out).load(as: UInt32.self)
    try checkStructSize(callerSize, minimum, name, "set it to sizeof(*\(name)) first")
    let n = min(Int(callerSize), MemoryLayout<T>.size)
    var v = value
    withUnsafeMutableBytes(of: &v) { raw in
        raw.storeBytes(of: UInt32(n), as: UInt32.self)
        UnsafeMutableRawPointer(out).copyMemory(from: raw.baseAddress!, byteCount: n)
    }
}

/// The size a caller's struct declares must cover the first release of that struct.
func checkStructSize(_ size: UInt32, _ minimum: Int, _ name: String, _ howToSet: String) throws {
    if Int(size) < minimum {
        throw invalid("\(name)->struct_size is \(size), at least \(minimum) expected (\(howToSet))")
    }
}
