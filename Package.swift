// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "ijepa",
    products: [
        // The engine, for Swift packages that want the model directly.
        // The Swift-native API (value-type Config, Model class with throwing methods).
        .library(name: "IJEPA", targets: ["IJEPA"]),
        // The engine itself, for Swift code that wants the flat buffers and kernels.
        .library(name: "IJEPACore", targets: ["IJEPACore"]),
        // The C ABI (include/ijepa.h) as a shared library: libijepa.so. The Makefile builds the
        // distribution copy (static Swift runtime, SONAME, exported symbols limited to ijepa_*).
        .library(name: "ijepa", type: .dynamic, targets: ["IJEPACAPI"]),
    ],
    targets: [
        // OpenBLAS (Debian: libopenblas-dev), found through pkg-config.
        .systemLibrary(
            name: "COpenBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev", "pkg-config"])]
        ),
        // The engine; it imports the header for ijepa_config, whose fields its config table
        // (ModelConfig.fields) maps.
        .target(
            name: "IJEPACore",
            dependencies: ["COpenBLAS", "CIJEPA", "CIJEPAKernels"]
        ),
        // The packed-weight matrix products of inference, per CPU family chosen at run time
        // (AVX-512F, AVX2 + FMA, portable C): C, because Swift compiles a function for one CPU only.
        .target(
            name: "CIJEPAKernels"
        ),
        // The hand-written header as a C module, so the Swift side implements it with
        // @c @implementation and the compiler checks every signature against it.
        .target(
            name: "CIJEPA",
            path: "include",
            publicHeadersPath: "."
        ),
        .target(
            name: "IJEPACAPI",
            dependencies: ["IJEPACore", "CIJEPA"]
        ),
        .target(
            name: "IJEPA",
            dependencies: ["IJEPACore"]
        ),
        .testTarget(
            name: "IJEPATests",
            dependencies: ["IJEPA"]
        ),
        .testTarget(
            name: "IJEPACoreTests",
            dependencies: ["IJEPACore"]
        ),
    ]
)
