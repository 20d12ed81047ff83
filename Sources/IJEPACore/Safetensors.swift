#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

#if _endian(big)
#error("safetensors data is little-endian; big-endian hosts are not supported")
#endif

/// The safetensors format: 8-byte little-endian header length N, N bytes of JSON header
/// `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}`, then the
/// raw little-endian data. The reader trusts nothing in the file: sizes, offsets, dtypes,
/// overlaps, duplicate keys and the JSON itself are all checked, with messages that say what.
public struct SafetensorsFile {
    public struct Entry: Sendable, Equatable {
        public var dtype: String
        public var shape: [Int]
        public var begin: Int
        public var end: Int
        public var count: Int { shape.reduce(1, *) }
    }

    public static let maxHeaderBytes = 100 << 20

    /// Where the tensor data is: the whole file in memory, or an open file read on demand (the
    /// header only is read up front, so a large file is never held twice).
    enum Storage {
        case memory([UInt8])
        case file(OpenFile)
    }
    let storage: Storage
    public let headerSize: Int
    public private(set) var entries: [String: Entry] = [:]
    public private(set) var metadata: [String: String] = [:]
    /// Tensor names in data order.
    public var names: [String] { entries.sorted { $0.value.begin < $1.value.begin }.map(\.key) }
    var dataStart: Int { 8 + headerSize }

    public static func elementSize(_ dtype: String) -> Int? {
        switch dtype {
        case "F64", "I64", "U64": return 8
        case "F32", "I32", "U32": return 4
        case "F16", "BF16", "I16", "U16": return 2
        case "I8", "U8", "BOOL", "F8_E4M3", "F8_E5M2": return 1
        default: return nil
        }
    }

    /// Reads the whole file into memory (small files: checkpoints of a training model).
    public init(path: String) throws {
        try self.init(bytes: try readWholeFile(path))
    }

    /// Reads only the header now; tensors are read from the file when asked for (readFloats
    /// reads straight into the destination). The file must not change while this value lives.
    public init(openingLazily path: String) throws {
        let f = try OpenFile(path)
        guard f.size >= 8 else { throw IJEPAError.format("safetensors: file is \(f.size) bytes, shorter than the 8-byte header length (truncated?)") }
        var len = [UInt8](repeating: 0, count: 8)
        try len.withUnsafeMutableBytes { try f.read(into: $0.baseAddress!, count: 8, at: 0) }
        let n = Self.headerLength(len)
        guard n <= UInt64(Self.maxHeaderBytes) else { throw IJEPAError.format("safetensors: header length \(n) is larger than the 100 MiB limit (not a safetensors file?)") }
        guard n >= 2, Int(n) <= f.size - 8 else {
            throw IJEPAError.format("safetensors: header length \(n) does not fit in a file of \(f.size) bytes (truncated?)")
        }
        var header = [UInt8](repeating: 0, count: Int(n))
        try header.withUnsafeMutableBytes { try f.read(into: $0.baseAddress!, count: Int(n), at: 8) }
        try self.init(storage: .file(f), header: header, fileSize: f.size)
    }

    public init(bytes: [UInt8]) throws {
        guard bytes.count >= 8 else { throw IJEPAError.format("safetensors: file is \(bytes.count) bytes, shorter than the 8-byte header length (truncated?)") }
        let n = Self.headerLength(Array(bytes[0..<8]))
        guard n <= UInt64(Self.maxHeaderBytes) else { throw IJEPAError.format("safetensors: header length \(n) is larger than the 100 MiB limit (not a safetensors file?)") }
        guard n >= 2, Int(n) <= bytes.count - 8 else {
            throw IJEPAError.format("safetensors: header length \(n) does not fit in a file of \(bytes.count) bytes (truncated?)")
        }
        try self.init(storage: .memory(bytes), header: Array(bytes[8..<(8 + Int(n))]), fileSize: bytes.count)
    }

    static func headerLength(_ b: [UInt8]) -> UInt64 {
        var n: UInt64 = 0
        for i in 0..<8 { n |= UInt64(b[i]) << (8 * UInt64(i)) }
        return n
    }

    private init(storage: Storage, header: [UInt8], fileSize: Int) throws {
        self.storage = storage
        func fmt(_ m: String) -> IJEPAError { .format("safetensors: " + m) }
        headerSize = header.count
        let json: JSONValue
        do { json = try JSONValue.parse(header) } catch let e as IJEPAError {
            throw fmt("header: \(e.message)")
        }
        guard let top = json.object else { throw fmt("header is not a JSON object") }
        let dataSize = fileSize - 8 - headerSize
        var spans: [(Int, Int, String)] = []
        for (key, value) in top {
            if key == "__metadata__" {
                guard let md = value.object else { throw fmt("__metadata__ is not an object") }
                for (k, v) in md {
                    guard let s = v.string else { throw fmt("__metadata__['\(k)'] is not a string") }
                    metadata[k] = s
                }
                continue
            }
            guard let dtype = value["dtype"]?.string, let shapeJ = value["shape"]?.array,
                  let offs = value["data_offsets"]?.array, offs.count == 2
            else { throw fmt("tensor '\(key)' lacks dtype, shape or data_offsets") }
            guard let esize = Self.elementSize(dtype) else { throw fmt("tensor '\(key)' has unknown dtype '\(dtype)'") }
            guard shapeJ.count <= 8 else { throw fmt("tensor '\(key)' has \(shapeJ.count) dimensions (at most 8)") }
            var shape: [Int] = []
            var count = 1
            for s in shapeJ {
                guard let d = s.number, d >= 0, d == d.rounded(), d <= Double(Int32.max) else {
                    throw fmt("tensor '\(key)' has an invalid shape")
                }
                shape.append(Int(d))
                let (c, o) = count.multipliedReportingOverflow(by: Int(d))
                if o || c > (1 << 40) { throw fmt("tensor '\(key)' shape is too large") }
                count = c
            }
            guard let b = offs[0].number, let e = offs[1].number, b >= 0, e >= b, b == b.rounded(), e == e.rounded(),
                  e <= Double(dataSize)
            else { throw fmt("tensor '\(key)' data_offsets lie outside the \(dataSize)-byte data section (truncated?)") }
            guard Int(e) - Int(b) == count * esize else {
                throw fmt("tensor '\(key)' holds \(Int(e) - Int(b)) bytes but dtype \(dtype) with shape \(shape) needs \(count * esize)")
            }
            entries[key] = Entry(dtype: dtype, shape: shape, begin: Int(b), end: Int(e))
            spans.append((Int(b), Int(e), key))
        }
        spans.sort { $0.0 < $1.0 }
        for i in 1..<max(1, spans.count) where spans[i].0 < spans[i - 1].1 {
            throw fmt("tensors '\(spans[i - 1].2)' and '\(spans[i].2)' overlap")
        }
    }

    public func entry(_ name: String) throws -> Entry {
        guard let e = entries[name] else { throw IJEPAError.format("safetensors: no tensor named '\(name)'") }
        return e
    }

    /// Copies the tensor as float32 into dst (F32 as is; F64, F16 and BF16 converted).
    public func readFloats(_ name: String, into dst: UnsafeMutablePointer<Float>) throws {
        let e = try entry(name)
        guard ["F32", "F64", "F16", "BF16"].contains(e.dtype) else {
            throw IJEPAError.format("safetensors: tensor '\(name)' has dtype \(e.dtype), expected F32, F64, F16 or BF16")
        }
        if e.dtype == "F32", case .file(let f) = storage {   // straight into place
            try f.read(into: UnsafeMutableRawPointer(dst), count: e.count * 4, at: dataStart + e.begin)
            return
        }
        let esize = Self.elementSize(e.dtype)!
        try withData(e, chunkElements: 1 << 18, elementSize: esize) { p, first, n in
            let d = dst + first
            switch e.dtype {
            case "F32": UnsafeMutableRawPointer(d).copyMemory(from: p, byteCount: n * 4)
            case "F64": for i in 0..<n { d[i] = Float(p.loadUnaligned(fromByteOffset: 8 * i, as: Double.self)) }
            case "F16": for i in 0..<n { d[i] = Float(Float16(bitPattern: p.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
            default: for i in 0..<n { d[i] = Float(bitPattern: UInt32(p.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16) }
            }
        }
    }

    /// Calls body(bytes, firstElement, elements) over the tensor's data: once over the whole
    /// tensor in memory, or chunk by chunk (at most chunkElements) read from the file.
    func withData(_ e: Entry, chunkElements: Int, elementSize esize: Int,
                  _ body: (UnsafeRawPointer, Int, Int) throws -> Void) throws {
        switch storage {
        case .memory(let bytes):
            try bytes.withUnsafeBytes { raw in try body(raw.baseAddress! + dataStart + e.begin, 0, e.count) }
        case .file(let f):
            let chunk = UnsafeMutableRawPointer.allocate(byteCount: max(1, min(e.count, chunkElements) * esize), alignment: 16)
            defer { chunk.deallocate() }
            var first = 0
            while first < e.count {
                let n = min(chunkElements, e.count - first)
                try f.read(into: chunk, count: n * esize, at: dataStart + e.begin + first * esize)
                try body(UnsafeRawPointer(chunk), first, n)
                first += n
            }
        }
    }

    public func floats(_ name: String) throws -> [Float] {
        let e = try entry(name)
        var out = [Float](repeating: 0, count: e.count)
        try out.withUnsafeMutableBufferPointer { try readFloats(name, into: $0.baseAddress!) }
        return out
    }

    /// The tensor as Int64 (any integer dtype converted).
    public func ints(_ name: String) throws -> [Int64] {
        let e = try entry(name)
        guard ["I64", "I32", "I16", "I8", "U8", "U16", "U32", "U64"].contains(e.dtype) else {
            throw IJEPAError.format("safetensors: tensor '\(name)' has dtype \(e.dtype), expected an integer type")
        }
        var out = [Int64](repeating: 0, count: e.count)
        let esize = Self.elementSize(e.dtype)!
        try withData(e, chunkElements: 1 << 16, elementSize: esize) { p, first, n in
            for j in 0..<n {
                let i = first + j
                switch e.dtype {
                case "I64": out[i] = p.loadUnaligned(fromByteOffset: 8 * j, as: Int64.self)
                case "U64": out[i] = Int64(bitPattern: p.loadUnaligned(fromByteOffset: 8 * j, as: UInt64.self))
                case "I32": out[i] = Int64(p.loadUnaligned(fromByteOffset: 4 * j, as: Int32.self))
                case "U32": out[i] = Int64(p.loadUnaligned(fromByteOffset: 4 * j, as: UInt32.self))
                case "I16": out[i] = Int64(p.loadUnaligned(fromByteOffset: 2 * j, as: Int16.self))
                case "U16": out[i] = Int64(p.loadUnaligned(fromByteOffset: 2 * j, as: UInt16.self))
                case "I8": out[i] = Int64(p.load(fromByteOffset: j, as: Int8.self))
                default: out[i] = Int64(p.load(fromByteOffset: j, as: UInt8.self))
                }
            }
        }
        return out
    }
}

/// Collects tensors (borrowed memory) and writes them as one safetensors file, atomically.
public struct SafetensorsWriter {
    struct Item { var name: String; var dtype: String; var shape: [Int]; var data: UnsafeRawBufferPointer }
    var items: [Item] = []
    public var metadata: [(String, String)] = []
    /// The data section starts at a multiple of this many bytes (the header is padded with
    /// spaces; 8 as the reference writer does).
    public var alignment = 8

    public init() {}

    /// The memory must stay valid until `write` returns.
    public mutating func add(_ name: String, shape: [Int], floats: UnsafePointer<Float>) {
        let n = shape.reduce(1, *)
        items.append(Item(name: name, dtype: "F32", shape: shape, data: UnsafeRawBufferPointer(start: floats, count: n * 4)))
    }

    public mutating func add(_ name: String, dtype: String, shape: [Int], bytes: UnsafeRawBufferPointer) {
        items.append(Item(name: name, dtype: dtype, shape: shape, data: bytes))
    }

    /// The header bytes (JSON padded with spaces so the data starts at a multiple of alignment).
    func header() -> [UInt8] {
        var kv: [(String, JSONValue)] = []
        if !metadata.isEmpty { kv.append(("__metadata__", .object(metadata.map { ($0.0, .string($0.1)) }))) }
        var off = 0
        for it in items {
            kv.append((it.name, .object([
                ("dtype", .string(it.dtype)),
                ("shape", .array(it.shape.map { .number(Double($0)) })),
                ("data_offsets", .array([.number(Double(off)), .number(Double(off + it.data.count))])),
            ])))
            off += it.data.count
        }
        var h = Array(JSONValue.object(kv).serialized.utf8)
        while (h.count + 8) % max(alignment, 1) != 0 { h.append(0x20) }
        return h
    }

    /// Writes to a temporary file in the same directory, fsyncs it, renames it over `path` and
    /// fsyncs the directory: a crash at any moment leaves the old file or the new one.
    public func write(atomicallyTo path: String) throws {
        let h = header()
        var len = UInt64(h.count).littleEndian
        let dir: String = {
            guard let slash = path.lastIndex(of: "/") else { return "." }
            return slash == path.startIndex ? "/" : String(path[..<slash])
        }()
        removeStaleTemporaries(of: path, in: dir)
        var rnd = RNG(seed: UInt64(UInt(bitPattern: Int(getpid()))) ^ UInt64(time(nil)) &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(clock()))
        let tmp = "\(path).tmp-\(getpid())-\(String(rnd.next() & 0xFFFF_FFFF, radix: 16))"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        if fd < 0 { throw IJEPAError.io("cannot create \(tmp): \(String(cString: strerror(errno)))") }
        var ok = false
        defer {
            if !ok { close(fd); unlink(tmp) }
        }
        try withUnsafeBytes(of: &len) { try writeAll(fd, $0, tmp) }
        try h.withUnsafeBytes { try writeAll(fd, $0, tmp) }
        for it in items { try writeAll(fd, it.data, tmp) }
        if fsync(fd) != 0 { throw IJEPAError.io("fsync \(tmp): \(String(cString: strerror(errno)))") }
        ok = true
        if close(fd) != 0 { unlink(tmp); throw IJEPAError.io("close \(tmp): \(String(cString: strerror(errno)))") }
        if rename(tmp, path) != 0 {
            let msg = String(cString: strerror(errno))
            unlink(tmp)
            throw IJEPAError.io("cannot rename \(tmp) to \(path): \(msg)")
        }
        let dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 { _ = fsync(dfd); close(dfd) }
    }
}

/// Removes "<name>.tmp-<pid>-<hex>" files left by saves whose process is gone (killed in the
/// middle of a save): they are never a checkpoint, only litter. Temporaries of live processes
/// (another save in progress) are left alone.
func removeStaleTemporaries(of path: String, in dir: String) {
    let base = path.split(separator: "/").last.map(String.init) ?? path
    let prefix = base + ".tmp-"
    guard let d = opendir(dir) else { return }
    defer { closedir(d) }
    while let e = readdir(d) {
        // d_name is read in place as a C string: the record readdir returned ends at its NUL.
        let nameOffset = MemoryLayout<dirent>.offset(of: \dirent.d_name)!
        let name = String(cString: (UnsafeRawPointer(e) + nameOffset).assumingMemoryBound(to: CChar.self))
        guard name.hasPrefix(prefix) else { continue }
        let rest = name.dropFirst(prefix.count)
        guard let dash = rest.firstIndex(of: "-"), let pid = Int32(rest[..<dash]), pid > 0 else { continue }
        if pid == getpid() { continue }
        if kill(pid, 0) == -1 && errno == ESRCH { unlink(dir + "/" + name) }
    }
}

func writeAll(_ fd: Int32, _ buf: UnsafeRawBufferPointer, _ name: String) throws {
    var done = 0
    while done < buf.count {
        let n = Glibc.write(fd, buf.baseAddress! + done, min(buf.count - done, 1 << 30))
        if n < 0 {
            if errno == EINTR { continue }
            throw IJEPAError.io("write \(name): \(String(cString: strerror(errno)))")
        }
        done += n
    }
}

/// A file open for reading at offsets (pread), closed when the last reference goes.
final class OpenFile: @unchecked Sendable {   // immutable after init; pread has no shared offset
    let fd: Int32
    let path: String
    let size: Int

    init(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw IJEPAError.io("cannot open \(path): \(String(cString: strerror(errno)))") }
        var st = stat()
        if fstat(fd, &st) != 0 {
            let m = String(cString: strerror(errno))
            close(fd)
            throw IJEPAError.io("cannot stat \(path): \(m)")
        }
        if (st.st_mode & S_IFMT) == S_IFDIR { close(fd); throw IJEPAError.io("\(path) is a directory") }
        self.fd = fd
        self.path = path
        size = Int(st.st_size)
    }

    deinit { close(fd) }

    /// Reads exactly count bytes at offset; a short read (the file shrank) is a format error.
    func read(into dst: UnsafeMutableRawPointer, count: Int, at offset: Int) throws {
        var done = 0
        while done < count {
            let n = pread(fd, dst + done, min(count - done, 1 << 30), off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw IJEPAError.io("read \(path): \(String(cString: strerror(errno)))")
            }
            if n == 0 { throw IJEPAError.format("\(path) ends at byte \(offset + done), before the data its header announces (truncated?)") }
            done += n
        }
    }
}

/// Reads a whole file with POSIX calls (no Foundation).
public func readWholeFile(_ path: String) throws -> [UInt8] {
    let f = try OpenFile(path)
    if f.size > (1 << 40) { throw IJEPAError.io("\(path) is too large (\(f.size) bytes)") }
    var out = [UInt8](repeating: 0, count: f.size)
    try out.withUnsafeMutableBytes { raw in
        if let base = raw.baseAddress { try f.read(into: base, count: f.size, at: 0) }
    }
    return out
}
