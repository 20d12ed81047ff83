internal import IJEPACore

/// Versions of the library and of its checkpoint format.
public enum LibraryInfo {
    /// The library version, "MAJOR.MINOR.PATCH" (the same as `ijepa_version()`).
    public static var version: String { libraryVersionString }
    /// The version written into checkpoints' `ijepa.format_version` metadata.
    public static var checkpointFormatVersion: String { IJEPACore.checkpointFormatVersion }
}

/// The library's log messages (for instance the mask sampler relaxing its overlap constraint,
/// as the official code warns). Silent by default.
public enum Logging {
    /// Severity of a log message (the same values as `IJEPA_LOG_*`).
    public enum Level: Int, Sendable, Comparable, CaseIterable {
        /// Detail for debugging.
        case debug = 0
        /// Normal progress.
        case info = 1
        /// Something the official code also warns about (e.g. the mask sampler relaxing).
        case warn = 2
        /// A failure.
        case error = 3

        /// Orders by severity (`debug < info < warn < error`).
        public static func < (a: Level, b: Level) -> Bool { a.rawValue < b.rawValue }
    }

    /// Receives one message. It may be called from any thread that calls into the library.
    public typealias Handler = @Sendable (Level, String) -> Void

    /// Routes the library's messages to `handler`; `nil` restores the default (silent).
    /// The setting is process-wide and shared with the C ABI's `ijepa_log_set`: the last call
    /// of either wins.
    public static func setHandler(_ handler: Handler?) {
        guard let handler else { Log.setSink(nil); return }
        Log.setSink { level, message in
            handler(Level(rawValue: Int(level.rawValue)) ?? .error, message)
        }
    }
}
