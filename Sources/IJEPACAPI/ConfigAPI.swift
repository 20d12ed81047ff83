import CIJEPA
import Glibc
import IJEPACore

// ijepa_config <-> ModelConfig through the engine's field table (ModelConfig.fields).

let configSizeV1 = ModelConfig.firstReleaseCSize

func cConfig(_ c: ModelConfig) -> ijepa_config { c.cStruct }

/// Reads a caller's config, checking struct_size first. Values are validated by the engine.
func swiftConfig(_ p: UnsafePointer<ijepa_config>?, _ arg: String = "cfg") throws -> ModelConfig {
    guard let p else { throw invalid("\(arg) is NULL") }
    let size = Int(p.pointee.struct_size)
    if size < configSizeV1 {
        throw invalid("\(arg)->struct_size is \(size), smaller than sizeof(ijepa_config) = \(configSizeV1) of ABI 1; start from ijepa_config_default")
    }
    return ModelConfig(cStruct: p.pointee, size: size)
}

/// The field names as C strings, allocated once and never freed (static storage for callers).
nonisolated(unsafe) private let configFieldNames: [UnsafeMutablePointer<CChar>?] = ModelConfig.fields.map { strdup($0.name) }

/// The preset names as C strings, allocated once and never freed.
nonisolated(unsafe) private let presetNames: [UnsafeMutablePointer<CChar>?] = ModelConfig.presetNames.map { strdup($0) }

@c @implementation
public func ijepa_config_preset_name(_ index: Int32) -> UnsafePointer<CChar>? {
    guard index >= 0, Int(index) < presetNames.count else { return nil }
    return UnsafePointer(presetNames[Int(index)])
}

@c @implementation
public func ijepa_config_field_count() -> Int32 {
    Int32(ModelConfig.fields.count)
}

@c @implementation
public func ijepa_config_field(_ index: Int32, _ name: UnsafeMutablePointer<UnsafePointer<CChar>?>?,
                               _ type: UnsafeMutablePointer<Int32>?, _ offset: UnsafeMutablePointer<Int>?) -> Int32 {
    guarded {
        let fields = ModelConfig.fields
        guard index >= 0, Int(index) < fields.count else {
            throw invalid("index \(index) is out of range 0..<\(fields.count)")
        }
        let f = fields[Int(index)]
        if let name { name.pointee = UnsafePointer(configFieldNames[Int(index)]) }
        if let type { type.pointee = f.kind.rawValue }
        if let offset { offset.pointee = f.cOffset }
    }
}

@c @implementation
public func ijepa_config_default(_ out: UnsafeMutablePointer<ijepa_config>?) -> Int32 {
    guarded {
        guard let out else { throw invalid("out is NULL") }
        try writeCovered(cConfig(ModelConfig()), to: out, "out", minimum: configSizeV1)
    }
}

@c @implementation
public func ijepa_config_preset(_ name: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<ijepa_config>?) -> Int32 {
    guarded {
        guard let name else { throw invalid("name is NULL") }
        guard let out else { throw invalid("out is NULL") }
        let n = String(cString: name)
        guard let c = ModelConfig.preset(n) else {
            throw invalid("unknown preset '\(n)'; known: \(ModelConfig.presetNames.joined(separator: ", "))")
        }
        try writeCovered(cConfig(c), to: out, "out", minimum: configSizeV1)
    }
}
