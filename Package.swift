// swift-tools-version:6.0
// StyleDiffusion: LoRA / DreamBooth training and sampling for Stable-Diffusion-style models, on the CPU.
import PackageDescription

/// Flags measured to matter (see README "Performance"): AVX-512 code generation and unchecked
/// arithmetic in the numeric targets. `-target-cpu` alone is worth ~250x on the SIMD kernels.
/// `-mno-avx512fp16`: plain `sapphirerapids` lets LLVM use AVX512-FP16 instructions (e.g. `vmovw` for 16-bit
/// moves) anywhere, which AVX-512 CPUs without FP16 (AMD Zen 4/5) reject with SIGILL; the feature list Swift
/// code is compiled with comes from the Clang importer, so `-Xcc` removes it. `icelake-server` (no FP16 either)
/// was measured 1.5x slower on the SGEMM/conv micro-kernels (`bench kernels --threads 1 --cpu-time`).
/// Kernels are optimised in debug builds too, so `swift test` runs model-sized checks quickly.
let kernelFlags: [SwiftSetting] = [
    .unsafeFlags(["-Ounchecked", "-wmo", "-enforce-exclusivity=unchecked", "-target-cpu", "sapphirerapids", "-Xcc", "-mno-avx512fp16"],
                 .when(configuration: .release)),
    .unsafeFlags(["-Ounchecked", "-enforce-exclusivity=unchecked", "-target-cpu", "sapphirerapids", "-Xcc", "-mno-avx512fp16"],
                 .when(configuration: .debug)),
]
let cpuFlags: [SwiftSetting] = [
    .unsafeFlags(["-target-cpu", "sapphirerapids", "-Xcc", "-mno-avx512fp16"]),
]
let language: [SwiftSetting] = [.swiftLanguageMode(.v5)]

let package = Package(
    name: "StyleDiffusion",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "bench", targets: ["bench"]),
        .executable(name: "lora", targets: ["lora"]),
        .executable(name: "generate", targets: ["generate"]),
        .executable(name: "world", targets: ["world"]),
        .executable(name: "train-style", targets: ["train-style"]),
        .executable(name: "train-base", targets: ["train-base"]),
    ],
    targets: [
        // MARK: - Numerical base
        .target(name: "TensorCore", swiftSettings: language + kernelFlags),
        .target(name: "Autograd", dependencies: ["TensorCore"], swiftSettings: language + kernelFlags),
        .target(name: "NN", dependencies: ["TensorCore", "Autograd"], swiftSettings: language + cpuFlags),

        // MARK: - Formats
        .target(name: "SafeTensors", dependencies: ["TensorCore"], swiftSettings: language + kernelFlags),
        .systemLibrary(name: "SystemLibPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        .target(name: "CLibPNG", dependencies: ["SystemLibPNG"]),
        .target(name: "PNGImage", dependencies: ["TensorCore", "CLibPNG"], swiftSettings: language + kernelFlags),

        // MARK: - Models and sampling
        .target(name: "Schedulers", dependencies: ["TensorCore"], swiftSettings: language + cpuFlags),
        .target(name: "CLIPText", dependencies: ["TensorCore", "Autograd", "NN"], swiftSettings: language + cpuFlags),
        .target(name: "DiffusionModels", dependencies: ["TensorCore", "Autograd", "NN"], exclude: ["README.md"],
                swiftSettings: language + cpuFlags),
        .target(name: "Adapters", dependencies: ["TensorCore", "Autograd", "NN", "SafeTensors"], exclude: ["README.md"],
                swiftSettings: language + cpuFlags),

        // MARK: - Pipeline and command line
        .target(name: "Pipeline",
                dependencies: ["TensorCore", "Autograd", "NN", "SafeTensors", "PNGImage", "Schedulers", "CLIPText",
                               "DiffusionModels", "Adapters"],
                exclude: ["README.md"], resources: [.copy("Resources/clip-merges-48894.txt.gz")],
                swiftSettings: language + kernelFlags),
        .target(name: "CLI", dependencies: ["TensorCore", "PNGImage", "Schedulers", "Pipeline", "Adapters", "Training",
                                           "PictureWorld", "Judge"],
                swiftSettings: language + cpuFlags),

        // MARK: - Picture world (the embedded default's data) and its judge
        .target(name: "PictureWorld", dependencies: ["TensorCore", "PNGImage"], swiftSettings: language + kernelFlags),
        .target(name: "Judge", dependencies: ["TensorCore", "Autograd", "NN", "SafeTensors", "PNGImage", "PictureWorld"],
                swiftSettings: language + cpuFlags),

        // MARK: - Training
        .target(name: "Training",
                dependencies: ["TensorCore", "Autograd", "NN", "SafeTensors", "PNGImage", "Schedulers", "CLIPText",
                               "DiffusionModels", "Adapters", "Pipeline"],
                swiftSettings: language + kernelFlags),

        // MARK: - The embedded base model
        .target(name: "BaseModel",
                dependencies: ["TensorCore", "Autograd", "NN", "SafeTensors", "PNGImage", "Schedulers", "CLIPText",
                               "DiffusionModels", "Pipeline", "PictureWorld"],
                swiftSettings: language + kernelFlags),

        // MARK: - Executables
        .executableTarget(name: "train-style", dependencies: ["CLI", "Training", "Pipeline", "PictureWorld"],
                          swiftSettings: language + cpuFlags),
        .executableTarget(name: "lora", dependencies: ["TensorCore", "SafeTensors", "Adapters"],
                          swiftSettings: language + cpuFlags),
        .executableTarget(name: "generate", dependencies: ["CLI"], swiftSettings: language + cpuFlags),
        .executableTarget(name: "bench", dependencies: ["TensorCore", "Autograd", "NN", "SafeTensors", "PNGImage", "CLIPText",
                                                "DiffusionModels", "Schedulers", "Pipeline", "Adapters", "Training"],
                          swiftSettings: language + kernelFlags),
        .executableTarget(name: "world", dependencies: ["TensorCore", "PNGImage", "PictureWorld", "Judge"],
                          swiftSettings: language + cpuFlags),
        .executableTarget(name: "train-base", dependencies: ["BaseModel", "PictureWorld", "Judge", "PNGImage", "Pipeline", "SafeTensors"],
                          swiftSettings: language + cpuFlags),

        // MARK: - Tests
        .testTarget(name: "TensorCoreTests", dependencies: ["TensorCore"], swiftSettings: language + cpuFlags),
        .testTarget(name: "AutogradTests", dependencies: ["TensorCore", "Autograd"], swiftSettings: language + cpuFlags),
        .testTarget(name: "NNTests", dependencies: ["TensorCore", "Autograd", "NN"],
                    resources: [.copy("Fixtures")], swiftSettings: language + cpuFlags),
        .testTarget(name: "SafeTensorsTests", dependencies: ["TensorCore", "SafeTensors"],
                    resources: [.copy("Fixtures")], swiftSettings: language + cpuFlags),
        .testTarget(name: "PNGImageTests", dependencies: ["TensorCore", "PNGImage"],
                    resources: [.copy("Fixtures")], swiftSettings: language + cpuFlags),
        .testTarget(name: "SchedulersTests", dependencies: ["TensorCore", "Schedulers"],
                    resources: [.copy("Fixtures")], swiftSettings: language + cpuFlags),
        .testTarget(name: "DiffusionModelsTests",
                    dependencies: ["TensorCore", "Autograd", "NN", "SafeTensors", "DiffusionModels"],
                    resources: [.copy("Fixtures")], swiftSettings: language + cpuFlags),
        .testTarget(name: "PipelineTests",
                    dependencies: ["TensorCore", "PNGImage", "SafeTensors", "Schedulers", "Pipeline", "CLI", "Adapters", "Judge", "PictureWorld", "Training"],
                    resources: [.copy("Fixtures")], swiftSettings: language + cpuFlags),
        .testTarget(name: "PictureWorldTests",
                    dependencies: ["TensorCore", "PNGImage", "PictureWorld", "Judge"], swiftSettings: language + cpuFlags),
        .testTarget(name: "CLIPTextTests", dependencies: ["TensorCore", "Autograd", "NN", "SafeTensors", "CLIPText"],
                    resources: [.copy("Fixtures")], swiftSettings: language + cpuFlags),
        .testTarget(name: "TrainingTests",
                    dependencies: ["TensorCore", "Autograd", "NN", "SafeTensors", "PNGImage", "Pipeline", "Adapters",
                                   "PictureWorld", "Training"],
                    swiftSettings: language + cpuFlags),
        .testTarget(name: "AdaptersTests",
                    dependencies: ["TensorCore", "Autograd", "NN", "SafeTensors", "DiffusionModels", "CLIPText", "Adapters"],
                    resources: [.copy("Fixtures")], swiftSettings: language + cpuFlags),
        .testTarget(name: "BaseModelTests",
                    dependencies: ["TensorCore", "Autograd", "NN", "CLIPText", "Pipeline", "PictureWorld", "BaseModel"],
                    resources: [.copy("Fixtures")], swiftSettings: language + cpuFlags),
    ]
)
