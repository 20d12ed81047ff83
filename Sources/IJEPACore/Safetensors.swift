import Foundation

/// The safetensors format: 8-byte little-endian header length, a JSON header
/// `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}`, then raw
/// little-endian data. The reader trusts nothing in the file: every size and offset is checked.
public struct SafetensorsFile {
    public struct Entry: Sendable, Equatable {
        public var dtype: String
        public var shape: [Int]
        public var begin: Int
        public var end: Int
        public var count: Int { shape.reduce(1, *) }
    }

    public static let maxHeaderBytes = 100 << 20

    public let data: Data
    public let headerSize: Int
    public private(set) var entries: [String: Entry] = [:]
    public private(set) var metadata: [String: String] = [:]
    /// Tensor names in file order (by data offset).
    public var names: [String] { entries.sorted { $0.value.begin < $1.value.begin }.map(\.key) }

    static func elementSize(_ dtype: String) -> Int? {
        switch dtype {
        case "F64", "I64", "U64": return 8
        case "F32", "I32", "U32": return 4
        case "F16", "BF16", "I16", "U16": return 2
        case "I8", "U8", "BOOL": return 1
        default: return nil
        }
    }

    public init(contentsOf url: URL) throws {
        let d: Data
        do { d = try Data(contentsOf: url, options: .mappedIfSafe) } catch {
            throw IJEPAError.io("cannot read \(url.path): \(error.localizedDescription)")
        }
        try self.init(data: d)
    }

    public init(data: Data) throws {
        self.data = data
        func fmt(_ m: String) -> IJEPAError { .format("safetensors: " + m) }
        guard data.count >= 8 else { throw fmt("file is \(data.count) bytes, shorter than the 8-byte header length") }
        var n: UInt64 = 0
        for i in 0..<8 { n |= UInt64(data[data.startIndex + i]) << (8 * UInt64(i)) }
        guard n <= UInt64(Self.maxHeaderBytes) else { throw fmt("header length \(n) is larger than the 100 MiB limit") }
        guard n >= 2, Int(n) <= data.count - 8 else {
            throw fmt("header length \(n) does not fit in a file of \(data.count) bytes (truncated?)")
        }
        headerSize = Int(n)
        let headerData = data.subdata(in: (data.startIndex + 8)..<(data.startIndex + 8 + headerSize))
        let obj: Any
        do { obj = try JSONSerialization.jsonObject(with: headerData, options: []) } catch {
            throw fmt("header is not valid JSON")
        }
        guard let dict = obj as? [String: Any] else { throw fmt("header is not a JSON object") }
        try Self.checkNoDuplicateKeys(headerData)
        let dataSize = data.count - 8 - headerSize
        var spans: [(Int, Int, String)] = []
        for (key, value) in dict {
            if key == "__metadata__" {
                guard let md = value as? [String: Any] else { throw fmt("__metadata__ is not an object") }
                for (k, v) in md {
                    guard let s = v as? String else { throw fmt("__metadata__[\(k)] is not a string") }
                    metadata[k] = s
                }
                continue
            }
            guard let t = value as? [String: Any], let dtype = t["dtype"] as? String,
                  let shapeAny = t["shape"] as? [Any], let offs = t["data_offsets"] as? [Any], offs.count == 2
            else { throw fmt("tensor '\(key)' lacks dtype, shape or data_offsets") }
            guard let esize = Self.elementSize(dtype) else { throw fmt("tensor '\(key)' has unknown dtype \(dtype)") }
            var shape: [Int] = []
            var count = 1
            for s in shapeAny {
                guard let v = (s as? NSNumber)?.int64Value, v >= 0, v <= Int64(Int32.max) else {
                    throw fmt("tensor '\(key)' has an invalid shape")
                }
                shape.append(Int(v))
                let (c, o) = count.multipliedReportingOverflow(by: Int(v))
                if o || c > Int(Int32.max) * 4 { throw fmt("tensor '\(key)' shape is too large") }
                count = c
            }
            guard shape.count <= 8 else { throw fmt("tensor '\(key)' has \(shape.count) dimensions (at most 8)") }
            guard let b = (offs[0] as? NSNumber)?.int64Value, let e = (offs[1] as? NSNumber)?.int64Value,
                  b >= 0, e >= b, e <= Int64(dataSize)
            else { throw fmt("tensor '\(key)' data_offsets are outside the \(dataSize)-byte data section (truncated?)") }
            guard Int(e - b) == count * esize else {
                throw fmt("tensor '\(key)' holds \(e - b) bytes but dtype \(dtype) shape \(shape) needs \(count * esize)")
            }
            entries[key] = Entry(dtype: dtype, shape: shape, begin: Int(b), end: Int(e))
            spans.append((Int(b), Int(e), key))
        }
        spans.sort { $0.0 < $1.0 }
        for i in 1..<max(1, spans.count) where spans[i].0 < spans[i - 1].1 {
            throw fmt("tensors '\(spans[i - 1].2)' and '\(spans[i].2)' overlap")
        }
    }

    /// JSONSerialization keeps the last of duplicate keys silently; the format forbids them.
    static func checkNoDuplicateKeys(_ json: Data) throws {
        // Collect the top-level keys with a small scanner (strings, nesting depth).
        var keys = Set<String>()
        var depth = 0
        var i = json.startIndex
        var expectKey = false
        while i < json.endIndex {
            let ch = json[i]
            if ch == UInt8(ascii: "\"") {
                var j = i + 1
                var bytes: [UInt8] = []
                while j < json.endIndex && json[j] != UInt8(ascii: "\"") {
                    if json[j] == UInt8(ascii: "\\") { bytes.append(json[j]); j += 1; if j >= json.endIndex { break } }
                    bytes.append(json[j]); j += 1
                }
                if depth == 1 && expectKey {
                    let k = String(decoding: bytes, as: UTF8.self)
                    if !keys.insert(k).inserted { throw IJEPAError.format("safetensors: duplicate tensor name '\(k)' in the header") }
                    expectKey = false
                }
                i = j + 1
                continue
            }
            switch ch {
            case UInt8(ascii: "{"): depth += 1; if depth == 1 { expectKey = true }
            case UInt8(ascii: "}"): depth -= 1
            case UInt8(ascii: "["): depth += 1
            case UInt8(ascii: "]"): depth -= 1
            case UInt8(ascii: ","): if depth == 1 { expectKey = true }
            default: break
            }
            i += 1
        }
    }

    public func entry(_ name: String) throws -> Entry {
        guard let e = entries[name] else { throw IJEPAError.format("safetensors: no tensor named '\(name)'") }
        return e
    }

    /// The tensor as float32 (F32 as is; F64, F16 and BF16 converted).
    public func floats(_ name: String) throws -> [Float] {
        let e = try entry(name)
        let base = data.startIndex + 8 + headerSize + e.begin
        var out = [Float](repeating: 0, count: e.count)
        data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            let p = raw.baseAddress! + (base - data.startIndex)
            for i in 0..<e.count {
                switch e.dtype {
                case "F32": out[i] = Float(bitPattern: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
                case "F64": out[i] = Float(Double(bitPattern: UInt64(littleEndian: p.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))))
                case "F16": out[i] = Float(Float16(bitPattern: UInt16(littleEndian: p.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))))
                case "BF16": out[i] = Float(bitPattern: UInt32(UInt16(littleEndian: p.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) << 16)
                default: break
                }
            }
        }
        if !["F32", "F64", "F16", "BF16"].contains(e.dtype) {
            throw IJEPAError.format("safetensors: tensor '\(name)' has dtype \(e.dtype), expected a float type")
        }
        return out
    }

    /// The tensor as Int64 (I64, I32, U8 ... converted).
    public func ints(_ name: String) throws -> [Int64] {
        let e = try entry(name)
        let base = data.startIndex + 8 + headerSize + e.begin
        guard ["I64", "I32", "I16", "I8", "U8", "U16", "U32"].contains(e.dtype) else {
            throw IJEPAError.format("safetensors: tensor '\(name)' has dtype \(e.dtype), expected an integer type")
        }
        var out = [Int64](repeating: 0, count: e.count)
        data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            let p = raw.baseAddress! + (base - data.startIndex)
            for i in 0..<e.count {
                switch e.dtype {
                case "I64": out[i] = Int64(littleEndian: p.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self))
                case "I32": out[i] = Int64(Int32(littleEndian: p.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)))
                case "I16": out[i] = Int64(Int16(littleEndian: p.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self)))
                case "I8": out[i] = Int64(p.load(fromByteOffset: i, as: Int8.self))
                case "U8": out[i] = Int64(p.load(fromByteOffset: i, as: UInt8.self))
                case "U16": out[i] = Int64(UInt16(littleEndian: p.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
                case "U32": out[i] = Int64(UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
                default: break
                }
            }
        }
        return out
    }
}
