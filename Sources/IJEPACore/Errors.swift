/// Errors raised by the engine. Each case maps to one status code of the C ABI
/// (`IJEPA_ERR_*` in include/ijepa.h); the message names what was wrong.
public enum IJEPAError: Error, Equatable, CustomStringConvertible, Sendable {
    case invalidArgument(String)   // IJEPA_ERR_INVALID_ARGUMENT = -1
    case shape(String)             // IJEPA_ERR_SHAPE            = -2
    case outOfMemory(String)       // IJEPA_ERR_OUT_OF_MEMORY    = -3
    case io(String)                // IJEPA_ERR_IO               = -4
    case format(String)            // IJEPA_ERR_FORMAT           = -5
    case state(String)             // IJEPA_ERR_STATE            = -6
    case numeric(String)           // IJEPA_ERR_NUMERIC          = -7
    case internalError(String)     // IJEPA_ERR_INTERNAL         = -8

    public var status: Int32 {
        switch self {
        case .invalidArgument: return -1
        case .shape: return -2
        case .outOfMemory: return -3
        case .io: return -4
        case .format: return -5
        case .state: return -6
        case .numeric: return -7
        case .internalError: return -8
        }
    }

    public var message: String {
        switch self {
        case .invalidArgument(let m), .shape(let m), .outOfMemory(let m), .io(let m),
             .format(let m), .state(let m), .numeric(let m), .internalError(let m):
            return m
        }
    }

    public var description: String { message }
}
