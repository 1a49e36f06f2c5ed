// `--quantize nf4|fp4` for the unet and train suites: the UNet's Linear layers in 4-bit (as generate/train-style
// --quantize), the F32 copies returned to the system, and memory read from /proc so that the peak covers the
// measured work only (the random F32 weights are built before quantizing).
import CLI
import DiffusionModels
import Foundation
import NN
import Pipeline
import TensorCore
#if canImport(Glibc)
import Glibc
#endif

/// Quantizes `unet` when `--quantize` is given; prints the quantized base and the resident memory after it.
func applyBenchQuantization(_ unet: UNet2DConditionModel, _ a: BenchArguments) throws {
    guard let name = a.string("--quantize") else { return }
    guard let type = FourBitType(rawValue: name) else {
        throw ModelBenchError.unknownConfig(name, FourBitType.allCases.map(\.rawValue))
    }
    let seconds = timeOnce {
        _ = try? unet.quantize(UNetQuantization(type: type, doubleQuantization: false), convolutions: a.has("--quantize-convs"))
    }
    releaseFreedMemory()
    var weightBytes = 0
    for (_, p) in unet.namedParameters() { weightBytes += 4 * p.value.count }
    let summary = unet.quantizedSummary()
    print(String(format: "quantized in %.1f s: %@", seconds, summary.line(type: name)))
    print(String(format: "  weights resident: %.3f GB (4-bit %.3f GB + F32 rest %.3f GB); process RSS %.2f GB",
                 Double(summary.bytes + weightBytes) / 1e9, Double(summary.bytes) / 1e9, Double(weightBytes) / 1e9,
                 procStatus("VmRSS") / 1e9))
}

/// glibc's `malloc_trim(0)` (looked up at run time; the Glibc module does not export it): the freed F32 weights
/// go back to the system instead of staying in the heap.
func releaseFreedMemory() {
    #if os(Linux)
    typealias Trim = @convention(c) (Int) -> Int32
    if let handle = dlopen(nil, RTLD_NOW), let symbol = dlsym(handle, "malloc_trim") {
        _ = unsafeBitCast(symbol, to: Trim.self)(0)
    }
    #endif
}

/// Forgets the process's peak resident set (Linux `clear_refs` 5), so VmHWM measures what follows.
func resetPeakRSS() {
    try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)
}

/// A `/proc/self/status` memory line (`VmRSS`, `VmHWM`) in bytes; 0 where unavailable.
func procStatus(_ key: String) -> Double {
    guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in text.split(separator: "\n") where line.hasPrefix(key + ":") {
        let kb = line.split(separator: " ").compactMap { Double($0) }.first ?? 0
        return kb * 1024
    }
    return 0
}

/// User + system CPU seconds of the process so far.
func processCPUSeconds() -> Double { ProcessUsage.now().cpuSeconds }

/// The memory and CPU line printed after a measured run.
func printMemoryAndCPU(cpuSeconds: Double, runs: Int) {
    print(String(format: "  peak RSS during the runs %.2f GB (VmHWM after reset), RSS now %.2f GB; CPU %.2f s per run",
                 procStatus("VmHWM") / 1e9, procStatus("VmRSS") / 1e9, cpuSeconds / Double(max(runs, 1))))
}

/// `--precision bf16`: the model's Linear and Conv2d layers hold their frozen weights in BF16 and compute in BF16, as
/// `--precision bf16` loads a model for generate and train-style; `fp32` (the default) leaves them as they are. On a CPU without AVX512-BF16 the run says so and stays F32.
func applyBenchPrecision(_ module: Module, _ a: BenchArguments) throws {
    guard let name = a.string("--precision") else { return }
    switch name {
    case "fp32": return
    case "bf16":
        guard BFloat16Compute.isAvailable else {
            return print("precision bf16: this CPU has no AVX512-BF16 (or a lower kernel level is active): F32")
        }
        var layers = 0
        let seconds = timeOnce {
            module.freeze()
            layers = module.computeInBFloat16(true, holdingWeights: true)
        }
        releaseFreedMemory()
        print(String(format: "precision bf16: %d layers packed in %.1f s (%.1f MB of BF16 weights)", layers, seconds,
                     Double(module.bfloat16PackedBytes) / 1_048_576))
    default: throw ModelBenchError.unknownConfig(name, ["bf16", "fp32"])
    }
}
