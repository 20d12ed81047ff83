import CIJEPA
import Glibc
import IJEPACore
import Synchronization

// Status codes, the per-thread last-error message, and the wrapper that turns every thrown
// error into a status: nothing thrown inside the library crosses the C boundary.

let libraryVersion: StaticString = "0.1.0"

/// Process-lifetime C strings (never freed).
func permanentCString(_ s: String) -> UnsafePointer<CChar> { UnsafePointer(strdup(s)!) }

nonisolated(unsafe) let versionCString = permanentCString("\(libraryVersion)")
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
