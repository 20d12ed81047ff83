// The Swift-native API of ijepa: value-type `Config`, `Masks` and `StepStats`, a `Model` class
// with throwing methods, and named, zero-copy access to the model's flat buffers. It is a thin
// layer over the engine (IJEPACore) and offers what the C ABI (include/ijepa.h) offers, in
// Swift terms: no C types, no status codes, no caller-allocated output buffers.
//
// Like the engine, this module does not use Foundation.
//
// Threads: a `Model` may be used by one thread at a time (calls on one model must not
// overlap); distinct models are independent and may be used concurrently from different
// threads. `Model` is deliberately not `Sendable`: hand a model to another task by moving it
// (Swift's region-based isolation allows sending a model nobody else references). Everything
// else here (`Config`, `Masks`, `StepStats`, `TensorInfo`, `IJEPAError`, `Logging`) is
// `Sendable` and thread-safe.

/// The error every throwing function of this module throws (typed throws: `catch` gives an
/// `IJEPAError` directly). It is the engine's own error type, re-exported, so the cases, their
/// messages and their C status codes are the same everywhere:
///
/// | case               | C status                          | meaning                                              |
/// |--------------------|-----------------------------------|------------------------------------------------------|
/// | `.invalidArgument` | `IJEPA_ERR_INVALID_ARGUMENT` (-1) | out-of-range value, bad config field, unknown name   |
/// | `.shape`           | `IJEPA_ERR_SHAPE` (-2)            | sizes that do not fit (image count, mask lengths)    |
/// | `.outOfMemory`     | `IJEPA_ERR_OUT_OF_MEMORY` (-3)    | the model is larger than the machine                 |
/// | `.io`              | `IJEPA_ERR_IO` (-4)               | a file could not be read or written                  |
/// | `.format`          | `IJEPA_ERR_FORMAT` (-5)           | a file is not a valid checkpoint                     |
/// | `.state`           | `IJEPA_ERR_STATE` (-6)            | call out of order (optimizer step without gradients) |
/// | `.numeric`         | `IJEPA_ERR_NUMERIC` (-7)          | NaN/Inf in images, loss or gradients                 |
/// | `.internalError`   | `IJEPA_ERR_INTERNAL` (-8)         | a bug in the library                                 |
///
/// `status` gives the C code, `message` (also `description`) names what was wrong.
@_exported public import enum IJEPACore.IJEPAError

extension IJEPAError {
    /// The short English name of the error's status, as `ijepa_status_string` returns it
    /// ("invalid argument", "shape mismatch", ...).
    public var statusName: String {
        switch self {
        case .invalidArgument: return "invalid argument"
        case .shape: return "shape mismatch"
        case .outOfMemory: return "out of memory"
        case .io: return "I/O error"
        case .format: return "bad file format"
        case .state: return "invalid state"
        case .numeric: return "numeric error (NaN or Inf)"
        case .internalError: return "internal error"
        }
    }
}

/// Runs an engine call and turns whatever it throws into an `IJEPAError` (the engine only throws
/// `IJEPAError`; anything else would be a bug and becomes `.internalError`).
@inline(__always)
func engine<R>(_ body: () throws -> R) throws(IJEPAError) -> R {
    do {
        return try body()
    } catch let e as IJEPAError {
        throw e
    } catch {
        throw IJEPAError.internalError("unexpected error: \(error)")
    }
}
