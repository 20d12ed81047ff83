// SIMD16 building blocks for the element-wise kernels: exp (Cephes polynomial, ~2 ulp), erf
// (a rational minimax approximation on [-4, 4], as Eigen's and TensorFlow's float erf,
// |error| ≤ 5e-7, no exp and one division), and row reductions with tails.

typealias F16 = SIMD16<Float>

@inline(__always)
func load16(_ p: CFPtr) -> F16 { UnsafeRawPointer(p).loadUnaligned(as: F16.self) }

@inline(__always)
func store16(_ v: F16, _ p: FPtr) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: F16.self) }

/// Loads n < 16 floats, the rest `fill`.
@inline(__always)
func loadPartial(_ p: CFPtr, _ n: Int, fill: Float = 0) -> F16 {
    var v = F16(repeating: fill)
    for i in 0..<n { v[i] = p[i] }
    return v
}

@inline(__always)
func storePartial(_ v: F16, _ p: FPtr, _ n: Int) { for i in 0..<n { p[i] = v[i] } }

/// k ≤ 16 floats: a full load when k == 16, else loadPartial (zero-filled).
@inline(__always)
func loadLanes(_ p: CFPtr, _ k: Int) -> F16 { k == 16 ? load16(p) : loadPartial(p, k) }

/// The first k ≤ 16 lanes of v.
@inline(__always)
func storeLanes(_ v: F16, _ p: FPtr, _ k: Int) { if k == 16 { store16(v, p) } else { storePartial(v, p, k) } }

/// e^x for every lane (x clamped to [-87.3, 88.7]).
@inline(__always)
func exp16(_ x0: F16) -> F16 {
    var x = x0.replacing(with: 88.7, where: x0 .> 88.7)
    x.replace(with: -87.3, where: x .< -87.3)
    let magic = F16(repeating: 12_582_912)   // 1.5·2^23: adding it rounds to an integer
    let t = x * 1.442_695_04 + magic
    let n = t - magic
    var r = x - n * 0.693_359_375
    r = r + n * 2.121_944_40e-4
    var p = F16(repeating: 1.987_569_15e-4)
    p = p * r + 1.398_199_95e-3
    p = p * r + 8.333_451_9e-3
    p = p * r + 4.166_579_59e-2
    p = p * r + 1.666_666_55e-1
    p = p * r + 5.000_000_12e-1
    let e = p * (r * r) + r + 1
    let ni = unsafeBitCast(t, to: SIMD16<Int32>.self) &- unsafeBitCast(magic, to: SIMD16<Int32>.self)
    let scale = unsafeBitCast((ni &+ 127) &<< 23, to: F16.self)
    return e * scale
}

/// erf(x) for every lane: x·P(x²)/Q(x²) with x clamped to [−4, 4] (erf(4) = 1 in float).
@inline(__always)
func erf16(_ x0: F16) -> F16 {
    var x = x0.replacing(with: 4, where: x0 .> 4)
    x.replace(with: -4, where: x .< -4)
    let x2 = x * x
    var p = F16(repeating: -2.726_142_258_013_06e-10)
    p = p * x2 + 2.770_681_424_959_02e-08
    p = p * x2 - 2.101_024_020_825_08e-06
    p = p * x2 - 5.692_506_394_623_46e-05
    p = p * x2 - 7.349_906_303_268_55e-04
    p = p * x2 - 2.954_599_808_540_25e-03
    p = p * x2 - 1.609_603_332_624_15e-02
    p = p * x
    var q = F16(repeating: -1.456_607_184_649_96e-05)
    q = q * x2 - 2.133_740_552_789_05e-04
    q = q * x2 - 1.682_826_974_382_03e-03
    q = q * x2 - 7.373_329_167_204_68e-03
    q = q * x2 - 1.426_473_905_141_89e-02
    return p / q
}

/// Σ x[0..<n]
@inline(__always)
func rowSum(_ x: CFPtr, _ n: Int) -> Float {
    var acc = F16(repeating: 0)
    var i = 0
    while i + 16 <= n { acc += load16(x + i); i += 16 }
    if i < n { acc += loadPartial(x + i, n - i) }
    return acc.sum()
}

/// Σ x[i]·y[i]
@inline(__always)
func rowDot(_ x: CFPtr, _ y: CFPtr, _ n: Int) -> Float {
    var acc = F16(repeating: 0)
    var i = 0
    while i + 16 <= n { acc += load16(x + i) * load16(y + i); i += 16 }
    if i < n { acc += loadPartial(x + i, n - i) * loadPartial(y + i, n - i) }
    return acc.sum()
}

/// max x[0..<n]
@inline(__always)
func rowMax(_ x: CFPtr, _ n: Int) -> Float {
    var acc = F16(repeating: -.infinity)
    var i = 0
    while i + 16 <= n { let v = load16(x + i); acc.replace(with: v, where: v .> acc); i += 16 }
    if i < n { let v = loadPartial(x + i, n - i, fill: -.infinity); acc.replace(with: v, where: v .> acc) }
    var m = acc[0]
    for k in 1..<16 { m = m > acc[k] ? m : acc[k] }
    return m
}

/// True when no x[0..<n] is NaN or ±Inf (x·0 is 0 for finite x and NaN otherwise).
func allFinite(_ x: CFPtr, _ n: Int) -> Bool {
    var i = 0
    while i < n {
        let end = min(n, i + 4096)
        var acc = F16(repeating: 0)
        while i + 16 <= end { acc += load16(x + i) * 0; i += 16 }
        if i < end { acc += loadPartial(x + i, end - i) * 0; i = end }
        if any(acc .!= 0) { return false }
    }
    return true
}
