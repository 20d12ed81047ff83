import CIJEPA
import XCTest
@testable import IJEPACore

/// ModelConfig.fields is the one list of the config's fields: these tests tie it to the stored
/// properties of ModelConfig and to the fields of ijepa_config in the header, and check that
/// every conversion built on it (C struct both ways, JSON both ways, equality) carries every
/// field.
final class ConfigFieldTests: XCTestCase {
    /// "start_lr" and "startLR" both become "startlr".
    private func squash(_ s: String) -> String { s.replacingOccurrences(of: "_", with: "").lowercased() }

    func testTableListsEveryStoredPropertyAndEveryHeaderField() {
        let names = ModelConfig.fields.map(\.name)
        XCTAssertEqual(Set(names).count, names.count, "duplicate names")
        let swiftProps = Mirror(reflecting: ModelConfig()).children.compactMap(\.label)
        XCTAssertEqual(Set(swiftProps.map(squash)), Set(names.map(squash)),
                       "ModelConfig's stored properties and ModelConfig.fields differ")
        let cFields = Mirror(reflecting: ijepa_config()).children.compactMap(\.label)
            .filter { $0 != "struct_size" && !$0.hasPrefix("reserved") }
        XCTAssertEqual(cFields, names, "ijepa_config's fields (header order) and ModelConfig.fields differ")
    }

    func testOffsetsAreInOrderInsideTheStructAndCoverIt() {
        let reserved0 = MemoryLayout<ijepa_config>.offset(of: \ijepa_config.reserved0)!
        var end = MemoryLayout<UInt32>.size   // struct_size
        for f in ModelConfig.fields {
            XCTAssertLessThanOrEqual(f.cEnd, MemoryLayout<ijepa_config>.size, f.name)
            // every byte between fields is alignment padding, or reserved0
            let gapStart = end == reserved0 ? reserved0 + 4 : end
            XCTAssertGreaterThanOrEqual(f.cOffset, gapStart, f.name)
            XCTAssertLessThan(f.cOffset - gapStart, f.kind == .floatPair ? 4 : f.kind.cSize, "\(f.name): undescribed bytes before it")
            end = f.cEnd
        }
        XCTAssertEqual(ModelConfig.firstReleaseCSize, 152)
        XCTAssertEqual(ModelConfig.fields.filter(\.appended).map(\.name), ["ragged_context"])
    }

    /// A config whose every field differs from the default, built through the table itself.
    private func everyFieldChanged() -> ModelConfig {
        var c = ModelConfig()
        for (i, f) in ModelConfig.fields.enumerated() {
            let v: JSONValue
            switch f.kind {
            case .int32: v = .number(Double(1000 + i))
            case .float: v = .number(0.125 * Double(i + 1))
            case .bool: v = .bool(!(f.get(c).bool ?? false))
            case .floatPair: v = .array([.number(0.25), .number(Double(i))])
            case .int64, .uint64: v = .string(String(1 << 40 + i))
            }
            XCTAssertTrue(f.set(&c, v), f.name)
            XCTAssertEqual(f.get(c), v, f.name)
            XCTAssertNotEqual(f.get(c), f.get(ModelConfig()), "\(f.name) still has its default")
        }
        return c
    }

    func testEveryFieldSurvivesTheCStructAndJSON() throws {
        let c = everyFieldChanged()
        XCTAssertNotEqual(c, ModelConfig())
        XCTAssertEqual(ModelConfig(cStruct: c.cStruct, size: MemoryLayout<ijepa_config>.size), c)
        let text = c.json.serialized
        XCTAssertEqual(try ModelConfig(jsonIgnoringValidity: try JSONValue.parse(text)), c)
        // A struct from the first release's header: appended fields keep their defaults.
        let old = ModelConfig(cStruct: c.cStruct, size: ModelConfig.firstReleaseCSize)
        for f in ModelConfig.fields {
            XCTAssertEqual(f.get(old), f.get(f.appended ? ModelConfig() : c), f.name)
        }
    }

    func testEqualityComparesEveryField() {
        let changed = everyFieldChanged()
        for f in ModelConfig.fields {
            var c = ModelConfig()
            XCTAssertTrue(f.set(&c, f.get(changed)))
            XCTAssertNotEqual(c, ModelConfig(), "== ignores \(f.name)")
        }
    }
}
