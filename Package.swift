// swift-tools-version:6.0
// StyleDiffusion: LoRA / DreamBooth training and sampling for Stable-Diffusion-style models, on the CPU.
import PackageDescription

/// The numeric code (Sources/Kernels) is compiled once per instruction-set level, each module with its own CPU
/// flags, and TensorCore picks the best level the CPU reports at run time (Sources/TensorCore/Kernels.swift).
/// Every other target carries no CPU flag, so one binary runs on any CPU of its architecture.
/// - `-target-cpu` is worth ~250x on the SIMD kernels (without it `addingProduct` becomes `fmaf` calls).
/// - AVX-512: `sapphirerapids` with AVX512-FP16 and AVX-VNNI off (AMD Zen 4/5 have neither; LLVM otherwise
///   uses FP16 moves anywhere). `icelake-server` was measured 1.5x slower on the SGEMM/conv micro-kernels.
/// - AVX2: `haswell` (AVX2, FMA, F16C, BMI1/2, LZCNT, MOVBE).
/// - Portable: no CPU flag (SSE2 on x86-64, NEON on arm64).
/// `-Ounchecked -wmo -enforce-exclusivity=unchecked` in every kernel module, in debug builds too, so
/// `swift test` runs model-sized checks quickly. On arm64 no x86 flag or module is used at all.
let kernelOptimization = ["-Ounchecked", "-wmo", "-enforce-exclusivity=unchecked"]
func kernelFlags(_ cpu: [String], _ level: String) -> [SwiftSetting] {
    [.define(level),
     .unsafeFlags(kernelOptimization + cpu, .when(configuration: .release)),
     .unsafeFlags(kernelOptimization.filter { $0 != "-wmo" } + cpu, .when(configuration: .debug))]
}
#if arch(x86_64)
let kernelModules: [(name: String, settings: [SwiftSetting])] = [
    ("KernelsAVX512", kernelFlags(["-target-cpu", "sapphirerapids", "-Xcc", "-mno-avx512fp16", "-Xcc", "-mno-avxvnni"],
                                  "KERNELS_AVX512")),
    ("KernelsAVX2", kernelFlags(["-target-cpu", "haswell"], "KERNELS_AVX2")),
    ("KernelsPortable", kernelFlags([], "KERNELS_PORTABLE")),
]
#else
let kernelModules: [(name: String, settings: [SwiftSetting])] = [
    ("KernelsPortable", kernelFlags([], "KERNELS_PORTABLE")),
]
#endif
let kernelModuleNames = kernelModules.map { Target.Dependency(stringLiteral: $0.name) }
/// The same optimisation, with no CPU flag, for the other targets with hot loops (array code: -Ounchecked was
/// measured 8x on bounds-checked loops), in debug builds too.
let fastFlags: [SwiftSetting] = [
    .unsafeFlags(kernelOptimization, .when(configuration: .release)),
    .unsafeFlags(kernelOptimization.filter { $0 != "-wmo" }, .when(configuration: .debug)),
]
let cpuFlags: [SwiftSetting] = []
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
        // MARK: - Numerical base: tensors, then the kernels per instruction-set level, then their dispatch
        .target(name: "CWorkerPool", cSettings: [.unsafeFlags(["-O2"])]),
        .target(name: "TensorBase", dependencies: ["CWorkerPool"], swiftSettings: language + fastFlags),
        .target(name: "CPUFeatures"),
        // BF16 products (AVX512-BF16), enabled per function; optimised in debug builds too.
        .target(name: "CBFloat16", cSettings: [.unsafeFlags(["-O3"])]),
    ] + kernelModules.map {
        .target(name: $0.name, dependencies: ["TensorBase"], swiftSettings: language + $0.settings)
    } + [
        .target(name: "TensorCore", dependencies: ["TensorBase", "CPUFeatures", "CBFloat16"] + kernelModuleNames,
                swiftSettings: language + fastFlags),
        .target(name: "Autograd", dependencies: ["TensorCore"], swiftSettings: language + fastFlags),
        .target(name: "NN", dependencies: ["TensorCore", "Autograd"], swiftSettings: language + cpuFlags),

        // MARK: - Formats
        .target(name: "SafeTensors", dependencies: ["TensorCore"], swiftSettings: language + fastFlags),
        .systemLibrary(name: "SystemLibPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        .target(name: "CLibPNG", dependencies: ["SystemLibPNG"]),
        // JPEG and WebP through the system's libjpeg-turbo / libwebp, loaded at run time (dlopen): no link-time dependency.
        .target(name: "CImageCodecs", linkerSettings: [.linkedLibrary("dl", .when(platforms: [.linux]))]),
        .target(name: "PNGImage", dependencies: ["TensorCore", "CLibPNG", "CImageCodecs"], swiftSettings: language + fastFlags),

        // MARK: - Models and sampling
        .target(name: "Schedulers", dependencies: ["TensorCore"], exclude: ["README.md"], swiftSettings: language + cpuFlags),
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
                swiftSettings: language + fastFlags),
        .target(name: "CLI", dependencies: ["TensorCore", "NN", "PNGImage", "Schedulers", "DiffusionModels", "Pipeline", "Adapters", "Training",
                                           "PictureWorld", "Judge"],
                swiftSettings: language + cpuFlags),

        // MARK: - Picture world (the embedded default's data) and its judge
        .target(name: "PictureWorld", dependencies: ["TensorCore", "PNGImage"], swiftSettings: language + fastFlags),
        .target(name: "Judge", dependencies: ["TensorCore", "Autograd", "NN", "SafeTensors", "PNGImage", "PictureWorld"],
                swiftSettings: language + cpuFlags),

        // MARK: - Training
        .target(name: "Training",
                dependencies: ["TensorCore", "Autograd", "NN", "SafeTensors", "PNGImage", "Schedulers", "CLIPText",
                               "DiffusionModels", "Adapters", "Pipeline"],
                exclude: ["README.md"], swiftSettings: language + fastFlags),

        // MARK: - The embedded base model
        .target(name: "BaseModel",
                dependencies: ["TensorCore", "Autograd", "NN", "SafeTensors", "PNGImage", "Schedulers", "CLIPText",
                               "DiffusionModels", "Pipeline", "PictureWorld", "Training"],
                swiftSettings: language + fastFlags),

        // MARK: - Executables
        .executableTarget(name: "train-style", dependencies: ["CLI", "Training", "Pipeline", "PictureWorld"],
                          swiftSettings: language + cpuFlags),
        .executableTarget(name: "lora", dependencies: ["CLI", "TensorCore", "SafeTensors", "Adapters", "Pipeline"],
                          swiftSettings: language + cpuFlags),
        .executableTarget(name: "generate", dependencies: ["CLI"], swiftSettings: language + cpuFlags),
        .executableTarget(name: "bench", dependencies: ["CLI", "TensorCore", "Autograd", "NN", "SafeTensors", "PNGImage", "CLIPText",
                                                "DiffusionModels", "Schedulers", "Pipeline", "Adapters", "Training"],
                          swiftSettings: language + fastFlags),
        .executableTarget(name: "world", dependencies: ["CLI", "TensorCore", "PNGImage", "PictureWorld", "Judge"],
                          swiftSettings: language + cpuFlags),
        .executableTarget(name: "train-base", dependencies: ["CLI", "BaseModel", "Training", "PictureWorld", "Judge", "PNGImage", "Pipeline",
                                                               "SafeTensors"],
                          swiftSettings: language + cpuFlags),

        // MARK: - Tests
        // Helpers shared by the test targets: fixture paths, scratch folders, tensor comparisons, test RNG.
        .target(name: "TestSupport", dependencies: ["TensorCore"], path: "Tests/TestSupport",
                swiftSettings: language + cpuFlags),
        .testTarget(name: "TensorCoreTests", dependencies: ["TensorCore"], swiftSettings: language + cpuFlags),
        .testTarget(name: "AutogradTests", dependencies: ["TensorCore", "Autograd", "TestSupport"], swiftSettings: language + cpuFlags),
        .testTarget(name: "NNTests", dependencies: ["TensorCore", "Autograd", "NN"],
                    resources: [.copy("Fixtures")], swiftSettings: language + cpuFlags),
        .testTarget(name: "SafeTensorsTests", dependencies: ["TensorCore", "SafeTensors"],
                    resources: [.copy("Fixtures")], swiftSettings: language + cpuFlags),
        .testTarget(name: "PNGImageTests", dependencies: ["TensorCore", "PNGImage", "TestSupport"],
                    resources: [.copy("Fixtures")], swiftSettings: language + cpuFlags),
        .testTarget(name: "SchedulersTests", dependencies: ["TensorCore", "Schedulers"],
                    resources: [.copy("Fixtures")], swiftSettings: language + cpuFlags),
        .testTarget(name: "DiffusionModelsTests",
                    dependencies: ["TensorCore", "Autograd", "NN", "SafeTensors", "DiffusionModels", "TestSupport"],
                    resources: [.copy("Fixtures")], swiftSettings: language + cpuFlags),
        .testTarget(name: "PipelineTests",
                    dependencies: ["TensorCore", "Autograd", "CLIPText", "PNGImage", "SafeTensors", "Schedulers", "DiffusionModels", "Pipeline",
                                   "Adapters", "TestSupport"],
                    exclude: ["Fixtures"], swiftSettings: language + cpuFlags),
        .testTarget(name: "CLITests",
                    dependencies: ["TensorCore", "PNGImage", "Pipeline", "CLI", "Adapters", "Judge", "PictureWorld", "Training",
                                   "TestSupport"],
                    swiftSettings: language + cpuFlags),
        .testTarget(name: "PictureWorldTests",
                    dependencies: ["TensorCore", "PNGImage", "PictureWorld", "Judge", "TestSupport"],
                    resources: [.copy("Fixtures")], swiftSettings: language + cpuFlags),
        .testTarget(name: "CLIPTextTests", dependencies: ["TensorCore", "Autograd", "NN", "SafeTensors", "CLIPText", "TestSupport"],
                    resources: [.copy("Fixtures")], swiftSettings: language + cpuFlags),
        .testTarget(name: "TrainingTests",
                    dependencies: ["TensorCore", "Autograd", "NN", "SafeTensors", "PNGImage", "Pipeline", "Adapters",
                                   "PictureWorld", "Training", "TestSupport"],
                    swiftSettings: language + cpuFlags),
        .testTarget(name: "AdaptersTests",
                    dependencies: ["TensorCore", "Autograd", "NN", "SafeTensors", "DiffusionModels", "CLIPText", "Adapters",
                                   "TestSupport"],
                    exclude: ["Fixtures"], swiftSettings: language + cpuFlags),
        .testTarget(name: "BaseModelTests",
                    dependencies: ["TensorCore", "Autograd", "NN", "CLIPText", "DiffusionModels", "Pipeline", "PictureWorld", "BaseModel", "SafeTensors",
                                   "TestSupport"],
                    resources: [.copy("Fixtures")], swiftSettings: language + cpuFlags),
        .testTarget(name: "QuantizationTests",
                    dependencies: ["TensorCore", "Autograd", "NN", "SafeTensors", "DiffusionModels", "Schedulers", "Pipeline",
                                   "TestSupport"],
                    exclude: ["Fixtures"], swiftSettings: language + cpuFlags),
    ]
)
