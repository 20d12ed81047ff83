import CIJEPA
import IJEPACore

func checkPath(_ path: UnsafePointer<CChar>?) throws -> String {
    guard let path else { throw invalid("path is NULL") }
    let s = String(cString: path)
    if s.isEmpty { throw invalid("path is empty") }
    return s
}

@c @implementation
public func ijepa_model_save(_ m: OpaquePointer?, _ path: UnsafePointer<CChar>?, _ flags: UInt32) -> Int32 {
    guarded {
        let b = try box(m)
        let p = try checkPath(path)
        try b.model.save(to: p, flags: SaveFlags(rawValue: flags))
    }
}

@c @implementation
public func ijepa_model_load(_ path: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> Int32 {
    guarded {
        guard let out else { throw invalid("out is NULL") }
        let p = try checkPath(path)
        out.pointee = register(try Model.load(from: p))
    }
}

@c @implementation
public func ijepa_model_load_weights(_ m: OpaquePointer?, _ path: UnsafePointer<CChar>?, _ strict: Int32) -> Int32 {
    guarded {
        let b = try box(m)
        let p = try checkPath(path)
        try b.model.loadWeights(from: p, strict: strict != 0)
    }
}
