// SIMD16 building blocks for the element-wise kernels: exp (Cephes polynomial, ~2 ulp) and
// erf (Abramowitz–Stegun 7.1.26, |error| ≤ 1.5e-7), and row reductions with tails.

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

/// (erf(x), e^{−x²}) for every lane.
@inline(__always)
func erfAndGauss16(_ x: F16) -> (F16, F16) {
    let ax = unsafeBitCast(unsafeBitCast(x, to: SIMD16<UInt32>.self) & 0x7FFF_FFFF, to: F16.self)
    let t = 1 / (ax * 0.327_591_1 + 1)
    var poly = F16(repeating: 1.061_405_429)
    poly = poly * t - 1.453_152_027
    poly = poly * t + 1.421_413_741
    poly = poly * t - 0.284_496_736
    poly = poly * t + 0.254_829_592
    poly = poly * t
    let g = exp16(-(x * x))
    let y = 1 - poly * g
    return (y.replacing(with: -y, where: x .< 0), g)
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
