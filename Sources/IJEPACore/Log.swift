import Synchronization

/// Library log messages go to one process-wide sink (the C ABI's ijepa_log_set installs it).
public enum LogLevel: Int32, Sendable { case debug = 0, info = 1, warn = 2, error = 3 }

public enum Log {
    public typealias Sink = @Sendable (LogLevel, String) -> Void
    private static let sink = Mutex<Sink?>(nil)

    public static func setSink(_ s: Sink?) { sink.withLock { $0 = s } }

    public static func emit(_ level: LogLevel, _ message: @autoclosure () -> String) {
        guard let s = sink.withLock({ $0 }) else { return }
        s(level, message())
    }
}
