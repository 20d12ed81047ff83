// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "ijepa",
    products: [
        // The engine, for Swift packages that want the model directly.
        .library(name: "IJEPACore", targets: ["IJEPACore"]),
    ],
    targets: [
        // OpenBLAS (Debian: libopenblas-dev), found through pkg-config.
        .systemLibrary(
            name: "COpenBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev", "pkg-config"])]
        ),
        .target(
            name: "IJEPACore",
            dependencies: ["COpenBLAS"]
        ),
        .testTarget(
            name: "IJEPACoreTests",
            dependencies: ["IJEPACore"],
            exclude: []
        ),
    ]
)
