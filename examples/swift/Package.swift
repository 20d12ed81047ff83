// swift-tools-version:6.0
// An example client of the ijepa Swift API, using the package by path. Build and run with
//   swift run --package-path examples/swift -c release train-and-encode
// OpenBLAS must be findable through pkg-config (Debian: apt-get install libopenblas-dev pkg-config).
import PackageDescription

let package = Package(
    name: "ijepa-swift-example",
    dependencies: [
        .package(name: "ijepa", path: "../.."),
    ],
    targets: [
        .executableTarget(
            name: "train-and-encode",
            dependencies: [.product(name: "IJEPA", package: "ijepa")]
        ),
    ]
)
