import Foundation
import XCTest
@testable import IJEPACore

/// Tolerances are stated per comparison as |a − b| ≤ atol + rtol·|b| (float32 everywhere).
func assertClose(_ a: [Float], _ b: [Float], atol: Float, rtol: Float = 0, _ what: String,
                 file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, "\(what): count", file: file, line: line)
    guard a.count == b.count else { return }
    var worst = 0, worstExcess = -Float.infinity
    for i in 0..<a.count {
        let excess = abs(a[i] - b[i]) - (atol + rtol * abs(b[i]))
        if !(excess <= worstExcess) || excess.isNaN { worstExcess = excess.isNaN ? .infinity : excess; worst = i }
    }
    XCTAssert(worstExcess <= 0, "\(what): index \(worst): \(a[worst]) vs \(b[worst]) (atol \(atol), rtol \(rtol))",
              file: file, line: line)
}

/// max |a − b| ≤ tol · max |b| — the fixture rule ("error relative to the tensor's max |value|").
func assertCloseToScale(_ a: [Float], _ b: [Float], tol: Float, _ what: String,
                        file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, "\(what): count", file: file, line: line)
    guard a.count == b.count, !b.isEmpty else { return }
    let scale = max(b.map { abs($0) }.max()!, 1e-30)
    var maxErr: Float = 0, at = 0
    for i in 0..<a.count {
        let e = abs(a[i] - b[i])
        if !(e <= maxErr) { maxErr = e.isNaN ? .infinity : e; at = i }
    }
    XCTAssert(maxErr <= tol * scale,
              "\(what): max error \(maxErr) at \(at) (\(a[at]) vs \(b[at])) exceeds \(tol) × max|ref| \(scale)",
              file: file, line: line)
}

func randomArray(_ n: Int, _ rng: inout RNG, scale: Double = 1) -> [Float] {
    (0..<n).map { _ in Float(rng.normal() * scale) }
}

/// Relative L2 distance ‖a − b‖ / ‖b‖.
func relativeL2(_ a: [Float], _ b: [Float]) -> Double {
    var num = 0.0, den = 0.0
    for i in 0..<a.count { let d = Double(a[i] - b[i]); num += d * d; den += Double(b[i]) * Double(b[i]) }
    return (num / max(den, 1e-300)).squareRoot()
}

/// Central finite-difference gradient of `f` at `x` (evaluated in Double through `f`).
func finiteDifference(_ x: inout [Float], eps: Float = 1e-2, _ f: ([Float]) -> Double) -> [Float] {
    var g = [Float](repeating: 0, count: x.count)
    for i in 0..<x.count {
        let old = x[i]
        x[i] = old + eps; let fp = f(x)
        x[i] = old - eps; let fm = f(x)
        x[i] = old
        g[i] = Float((fp - fm) / (2 * Double(eps)))
    }
    return g
}

let fixturesDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("Fixtures")

/// A heap float tensor for calling pointer kernels from tests.
final class HostTensor {
    let p: UnsafeMutablePointer<Float>
    let n: Int
    init(_ a: [Float]) { n = a.count; p = .allocate(capacity: max(1, n)); p.initialize(from: a, count: n) }
    init(zeros n: Int) { self.n = n; p = .allocate(capacity: max(1, n)); p.initialize(repeating: 0, count: max(1, n)) }
    deinit { p.deallocate() }
    var array: [Float] { Array(UnsafeBufferPointer(start: p, count: n)) }
    func set(_ a: [Float]) { p.update(from: a, count: n) }
}

func dot(_ a: [Float], _ b: [Float]) -> Double {
    var s = 0.0
    for i in 0..<a.count { s += Double(a[i]) * Double(b[i]) }
    return s
}
