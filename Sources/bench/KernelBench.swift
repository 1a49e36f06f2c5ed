// KernelBench: the `kernels` suite. Times each case (median after warm-up), reports GFLOP/s and the share
// of the FMA peak this machine delivers right now (measured by `measureFMAPeak`), and with `--torch` runs
// bench/torch_kernels.py as a server and interleaves its timings with ours case by case.
// On a machine shared with other work, `--threads 1 --cpu-time` (both sides) compares CPU efficiency
// without counting the time either process spent descheduled.
//
// Cases come from providers, one per kernel family (`kernelBenchProviders`); a file adds its family by
// defining a `() -> [BenchCase]` function and listing it there.
import CLI
import Foundation
import TensorCore

/// One timed case. `prepare` allocates inputs and returns the closure that runs the kernel once.
/// `name` is the key shared with bench/torch_kernels.py.
struct BenchCase {
    let name: String
    let flops: Double
    let prepare: () -> () -> Void
}

/// Every family of kernel cases, in print order.
let kernelBenchProviders: [() -> [BenchCase]] = [gemmBenchCases, convBenchCases, bfloat16BenchCases, attentionBenchCases,
                                                  groupNormBenchCases]

/// Seconds of one call: wall clock, or with `cpuTime` the process's CPU time (for tuning single-threaded
/// kernels on a machine shared with other work: time spent descheduled does not count).
func timeOnce(cpuTime: Bool = false, _ body: () -> Void) -> Double {
    let clock = cpuTime ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC
    var t0 = timespec(), t1 = timespec()
    clock_gettime(clock, &t0)
    body()
    clock_gettime(clock, &t1)
    return Double(t1.tv_sec - t0.tv_sec) + Double(t1.tv_nsec - t0.tv_nsec) * 1e-9
}

func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    return s.isEmpty ? .nan : (s[(s.count - 1) / 2] + s[s.count / 2]) / 2
}

/// Peak multiply-add throughput in GFLOP/s on `threads` threads: independent register-wide chains per thread,
/// run by the kernels of `level` (fused multiply-adds, or a multiply and an add on SSE2).
func measureFMAPeak(threads: Int, cpuTime: Bool, iterations: Int = 4_000_000, runs: Int = 3,
                    level: KernelSet = Kernels.active) -> Double {
    var best = 0.0
    let flops = level.multiplyAddChains(1, 1).flops * Double(threads * iterations)
    for _ in 0..<runs {
        let seconds = timeOnce(cpuTime: cpuTime) {
            DispatchQueue.concurrentPerform(iterations: threads) { t in
                if level.multiplyAddChains(iterations, Float(t + 1)).checksum == 42 { print("") }
            }
        }
        best = max(best, flops / seconds * 1e-9)
    }
    return best
}

/// The environment that holds PyTorch to the instruction-set level `level` names: ATen's own kernels
/// (ATEN_CPU_CAPABILITY), MKL's GEMM (MKL_ENABLE_INSTRUCTIONS) and oneDNN's convolutions (ONEDNN_MAX_CPU_ISA).
func torchEnvironment(level: String) -> [String: String] {
    switch level {
    case "avx512": return ["ATEN_CPU_CAPABILITY": "avx512", "MKL_ENABLE_INSTRUCTIONS": "AVX512",
                           "ONEDNN_MAX_CPU_ISA": "AVX512_CORE"]
    case "avx2": return ["ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"]
    default: return ["ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "ONEDNN_MAX_CPU_ISA": "SSE41"]
    }
}

/// bench/torch_kernels.py running in `--serve` mode: one case name per request, timings back as JSON.
final class TorchServer {
    private let process = Process()
    private let input = Pipe(), output = Pipe()
    private var buffer = Data()

    init(python: String, script: String, threads: Int, cpuTime: Bool, environment: [String: String] = [:]) throws {
        process.executableURL = URL(fileURLWithPath: python)
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.arguments = [script, "--serve", "--threads", "\(threads)"] + (cpuTime ? ["--cpu-time"] : [])
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        _ = try readLine()   // "ready"
    }

    private func readLine() throws -> String {
        while true {
            if let nl = buffer.firstIndex(of: 10) {
                let line = String(decoding: buffer[buffer.startIndex..<nl], as: UTF8.self)
                buffer = Data(buffer[(nl + 1)...])
                return line
            }
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { throw BenchError.torch("torch_kernels.py exited") }
            buffer.append(chunk)
        }
    }

    /// Per-run seconds of `reps` runs of case `name` (after the script's own warm-up on first use).
    func time(_ name: String, reps: Int) throws -> [Double] {
        input.fileHandleForWriting.write("\(name)\t\(reps)\n".data(using: .utf8)!)
        let line = try readLine()
        guard let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
              let seconds = obj["seconds"] as? [Double] else {
            throw BenchError.torch("bad reply for '\(name)': \(line)")
        }
        return seconds
    }

    func close() {
        input.fileHandleForWriting.closeFile()
        process.waitUntilExit()
    }
}

enum BenchError: Error, CustomStringConvertible {
    case torch(String)
    var description: String {
        switch self {
        case .torch(let m): return "bench: torch: \(m)"
        }
    }
}

struct KernelResult {
    let name: String, flops: Double, seconds: [Double], torchSeconds: [Double]?
    /// FMA peak (GFLOP/s) measured just before the case, on the threads it used: on a shared machine the
    /// peak available changes by the second, so "% peak" compares the case with the peak of its moment.
    let peak: Double
}

/// `bench kernels [--json] [--torch] [--filter TEXT] [--rounds N] [--threads N] [--skip-peak] [--cpu-time]
/// [--python PATH] [--script PATH] [--isa all|LEVEL[,LEVEL…]]`. `--isa` runs the suite once per kernel level
/// (this CPU's levels: `all`), with PyTorch held to the same level (`torchEnvironment`).
func runKernelBench(_ a: BenchArguments) throws {
    let isa = a.string("--isa")
    let levels = try isa.map { request -> [KernelSet] in
        if request == "all" { return Kernels.available }
        return try request.split(separator: ",").map { name in
            guard let set = Kernels.set(named: String(name)) else {
                throw CommandLineError.usage("--isa \(name): this CPU runs \(Kernels.available.map(\.name).joined(separator: ", "))")
            }
            return set
        }
    } ?? [Kernels.active]
    FileHandle.standardError.write(Data("bench: \(Kernels.summary), CPU \(Kernels.cpuName)\n".utf8))
    for level in levels {
        if isa != nil { print("== kernels \(level.name)") }
        try Parallel.$maxThreads.withValue(try a.int("--threads") ?? Parallel.maxThreads) {
            try Kernels.$override.withValue(level) {
                try kernelBench(a, torchEnvironment: isa == nil ? [:] : torchEnvironment(level: level.name))
            }
        }
    }
}

func kernelBench(_ a: BenchArguments, torchEnvironment: [String: String]) throws {
    let json = a.has("--json"), withTorch = a.has("--torch")
    let filter = a.string("--filter")
    let rounds = try a.int("--rounds") ?? 3
    let python = a.string("--python") ?? "/root/refenv/bin/python"
    let script = a.string("--script") ?? "bench/torch_kernels.py"

    let skipPeak = a.has("--skip-peak"), cpuTime = a.has("--cpu-time")
    let peak1 = skipPeak ? .nan : measureFMAPeak(threads: 1, cpuTime: cpuTime)
    let peak2 = skipPeak ? .nan : measureFMAPeak(threads: 2, cpuTime: cpuTime)
    let torch = withTorch ? try TorchServer(python: python, script: script, threads: Parallel.maxThreads,
                                            cpuTime: cpuTime, environment: torchEnvironment) : nil
    defer { torch?.close() }
    if !json {
        let timing = cpuTime ? "process CPU time (GFLOP per CPU-second)" : "wall clock"
        print("kernels: \(Kernels.active.name)" + (torchEnvironment.isEmpty ? "" : "; PyTorch with "
              + torchEnvironment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")))
        print(String(format: "FMA peak (measured): 1 thread %.0f GFLOP/s, 2 threads %.0f GFLOP/s; threads used: %d; "
                     + "timing: %@; %%peak: against the peak measured just before each case", peak1, peak2,
                     Parallel.maxThreads, timing))
        printHeader(withTorch: withTorch)
    }
    var results: [KernelResult] = []
    for provider in kernelBenchProviders {
        for c in provider() where filter.map({ c.name.contains($0) }) ?? true {
            let peak = skipPeak ? .nan : measureFMAPeak(threads: Parallel.maxThreads, cpuTime: cpuTime,
                                                        iterations: 1_000_000, runs: 2)
            let run = c.prepare()
            let once = timeOnce(run)
            run()
            let reps = max(2, min(10, Int(0.4 / max(once, 1e-6))))
            var mine: [Double] = [], theirs: [Double] = []
            for _ in 0..<rounds {
                for _ in 0..<reps { mine.append(timeOnce(cpuTime: cpuTime, run)) }
                if let torch { theirs += try torch.time(c.name, reps: reps) }
            }
            let r = KernelResult(name: c.name, flops: c.flops, seconds: mine, torchSeconds: torch == nil ? nil : theirs,
                                 peak: peak)
            results.append(r)
            if !json { printRow(r) }
        }
    }
    if json { printJSON(results, peak1: peak1, peak2: peak2) }
}

private func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }

private func printHeader(withTorch: Bool) {
    var h = pad("case", 34) + "      ms   GFLOP/s  %peak"
    if withTorch { h += "   torch ms  torch GF/s   speed vs torch" }
    print(h)
}

private func printRow(_ r: KernelResult) {
    let ms = median(r.seconds) * 1e3, gf = r.flops / median(r.seconds) * 1e-9
    var line = pad(r.name, 34) + String(format: "%8.2f  %8.1f  %4.0f%%", ms, gf, 100 * gf / r.peak)
    if let t = r.torchSeconds {
        if t.isEmpty {
            line += "   (no torch case)"
        } else {
            let tms = median(t) * 1e3
            line += String(format: "   %8.2f  %10.1f   %6.2fx", tms, r.flops / median(t) * 1e-9, tms / ms)
        }
    }
    print(line)
}

private func printJSON(_ results: [KernelResult], peak1: Double, peak2: Double) {
    var cases: [[String: Any]] = []
    for r in results {
        var c: [String: Any] = ["name": r.name, "flops": r.flops, "median_ms": median(r.seconds) * 1e3,
                                "gflops": r.flops / median(r.seconds) * 1e-9,
                                "fma_peak_gflops": r.peak,
                                "percent_of_peak": 100 * r.flops / median(r.seconds) * 1e-9 / r.peak]
        if let t = r.torchSeconds, !t.isEmpty {
            c["torch_median_ms"] = median(t) * 1e3
            c["speed_vs_torch"] = median(t) / median(r.seconds)
        }
        cases.append(c)
    }
    let root: [String: Any] = ["fma_peak_gflops_1_thread": peak1, "fma_peak_gflops_2_threads": peak2,
                               "threads": Parallel.maxThreads, "cases": cases]
    if let data = try? JSONSerialization.data(withJSONObject: root, options: [.prettyPrinted, .sortedKeys]) {
        print(String(decoding: data, as: UTF8.self))
    }
}

/// Random-filled buffer for bench inputs.
func benchBuffer(_ count: Int, seed: UInt64) -> UnsafeMutablePointer<Float> {
    let p = UnsafeMutablePointer<Float>.allocate(capacity: count)
    var s = seed | 1
    for i in 0..<count {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17
        p[i] = Float(s >> 40) / Float(1 << 24) - 0.5
    }
    return p
}

func benchTensor(_ shape: [Int], seed: UInt64) -> Tensor {
    let n = shape.reduce(1, *)
    let p = benchBuffer(n, seed: seed)
    defer { p.deallocate() }
    return Tensor(shape: shape) { $0.baseAddress!.update(from: p, count: n) }
}

/// SGEMM cases, named `sgemm MxKxN` (C[M x N] = A[M x K] B[K x N], all row-major); `Bt` cases take B
/// stored N x K, as a Linear layer's weight is.
func gemmBenchCases() -> [BenchCase] {
    let shapes = [(4096, 320, 320, false), (4096, 320, 960, false), (4096, 2880, 320, false),
                  (1024, 5760, 640, false), (256, 11520, 1280, false), (64, 1280, 1280, false),
                  (4096, 320, 320, true), (64, 1280, 1280, true),
                  // the embedded model's step (bench train --config toy --profile): 64-channel projections
                  (2048, 64, 64, false), (2048, 64, 64, true), (512, 128, 128, false), (512, 128, 128, true),
                  // SD-1.5's GEGLU projections at batch 2 (64², 32², 16² tokens; bench unet --config sd15 --profile-shapes)
                  (8192, 320, 2560, true), (2048, 640, 5120, true), (512, 1280, 10240, true)]
    // Aᵀ·B (A stored K x M), named `sgemm At MxKxN`: a LoRA pair's weight gradients, rank the narrow side and K
    // the tokens — the embedded model's (rank 8; batch 2 at 32² and 16²) and SD-1.5's (rank 4, 32 and 64; 64² and 32² latents).
    let transposedA = [(8, 2048, 64), (64, 2048, 8), (8, 512, 128), (128, 512, 8), (8, 8192, 32), (512, 2048, 8),
                       (4, 4096, 320), (320, 4096, 4), (4, 1024, 1280), (32, 4096, 320), (320, 4096, 32), (32, 1024, 1280),
                       (64, 4096, 320), (320, 4096, 64), (64, 1024, 1280)]
    return shapes.map { m, k, n, transB in
        BenchCase(name: "sgemm \(m)x\(k)x\(n)\(transB ? " Bt" : "")", flops: 2 * Double(m * n * k)) {
            let a = benchBuffer(m * k, seed: 1), b = benchBuffer(k * n, seed: 2), c = benchBuffer(m * n, seed: 3)
            return {
                sgemm(transA: false, transB: transB, m: m, n: n, k: k, alpha: 1, a: a, lda: k, b: b,
                      ldb: transB ? k : n, beta: 0, c: c, ldc: n)
            }
        }
    } + transposedA.map { m, k, n in
        BenchCase(name: "sgemm At \(m)x\(k)x\(n)", flops: 2 * Double(m * n * k)) {
            let a = benchBuffer(k * m, seed: 1), b = benchBuffer(k * n, seed: 2), c = benchBuffer(m * n, seed: 3)
            return { sgemm(transA: true, transB: false, m: m, n: n, k: k, alpha: 1, a: a, lda: m, b: b, ldb: n, beta: 0, c: c, ldc: n) }
        }
    }
}

/// 3x3, stride 1, pad 1 convolutions with bias, named `conv3x3 [NB ]HxWxCin->Cout fwd|bwd` (N images, 1 unless
/// named); `bwd` computes the input, weight and bias gradients. SD-1.5's UNet levels, the embedded model's
/// (batch 2, as its training step runs them) and the SD VAE decoder's widest. GFLOP/s count the direct
/// convolution's multiply-adds, whatever the algorithm (Winograd does 4/9 of them: `STYLEDIFFUSION_WINOGRAD=0`
/// measures the implicit GEMM alone).
func convBenchCases() -> [BenchCase] {
    [(1, 64, 320, 320), (1, 32, 640, 640), (1, 16, 1280, 1280), (2, 64, 32, 32), (2, 32, 64, 64), (2, 16, 128, 128),
     (1, 128, 512, 512), (1, 256, 256, 256)].flatMap { n, hw, cin, cout -> [BenchCase] in
        let flops = 2 * Double(n * hw * hw * cin * cout * 9)
        let base = "conv3x3 " + (n > 1 ? "\(n)B " : "") + "\(hw)x\(hw)x\(cin)->\(cout)"
        return [
            BenchCase(name: base + " fwd", flops: flops) {
                let x = benchTensor([n, hw, hw, cin], seed: 4), w = benchTensor([3, 3, cin, cout], seed: 5)
                let b = benchTensor([cout], seed: 6)
                return { _ = try? conv2d(x, weight: w, bias: b, stride: 1, padding: 1) }
            },
            BenchCase(name: base + " bwd", flops: 2 * flops) {
                let x = benchTensor([n, hw, hw, cin], seed: 4), w = benchTensor([3, 3, cin, cout], seed: 5)
                let dy = benchTensor([n, hw, hw, cout], seed: 7)
                return {
                    _ = try? conv2dBackwardInput(dy, weight: w, inputShape: x.shape, stride: 1, padding: 1)
                    _ = try? conv2dBackwardWeight(dy, input: x, kernelHeight: 3, kernelWidth: 3, stride: 1, padding: 1)
                    _ = try? conv2dBackwardBias(dy)
                }
            },
        ]
    } + samplingConvCases() + loraDownConvForwardCases() + loraConvWeightGradientCases() + [(64, 32), (32, 64), (16, 128)].map { hw, cout -> BenchCase in
        // A LoRA up convolution's weight gradient (1×1, rank 8 → Cout, batch 2).
        let n = 2, cin = 8
        return BenchCase(name: "conv1x1 2B \(hw)x\(hw)x\(cin)->\(cout) dW", flops: 2 * Double(n * hw * hw * cin * cout)) {
            let x = benchTensor([n, hw, hw, cin], seed: 4), dy = benchTensor([n, hw, hw, cout], seed: 7)
            return { _ = try? conv2dBackwardWeight(dy, input: x, kernelHeight: 1, kernelWidth: 1, stride: 1, padding: 0) }
        }
    }
}

/// The embedded model's forward convolutions outside the 3×3 levels, at the batch its sampling runs (16: 8 images
/// under classifier-free guidance, `bench unet --config toy --batch 16 --profile-shapes`): the 1×1 shortcuts and
/// conv_in / conv_out with 3 channels. Named `convKxK 16B HxWxCin->Cout fwd`.
func samplingConvCases() -> [BenchCase] {
    [(1, 32, 32, 64), (1, 64, 96, 32), (1, 64, 64, 32), (1, 16, 128, 128), (3, 64, 3, 32), (3, 64, 32, 3)]
        .map { k, hw, cin, cout -> BenchCase in
            let n = 16
            return BenchCase(name: "conv\(k)x\(k) \(n)B \(hw)x\(hw)x\(cin)->\(cout) fwd", flops: 2 * Double(n * hw * hw * cin * cout * k * k)) {
                let x = benchTensor([n, hw, hw, cin], seed: 4), w = benchTensor([k, k, cin, cout], seed: 5)
                let b = benchTensor([cout], seed: 6)
                return { _ = try? conv2d(x, weight: w, bias: b, stride: 1, padding: k / 2) }
            }
        }
}

/// LoRA down convolutions forward (3×3, Cin → rank, no bias): the embedded model's at rank 8, batch 2, as the main
/// job trains, and SD-1.5's first level at ranks 4 and 8 (implicit GEMM with most of each tile empty: 66–87 GFLOP/s).
func loraDownConvForwardCases() -> [BenchCase] {
    [(2, 64, 32, 8), (2, 64, 64, 8), (2, 64, 96, 8), (2, 32, 64, 8), (2, 16, 128, 8), (1, 64, 320, 4), (1, 64, 320, 8)]
        .map { n, hw, cin, cout -> BenchCase in
            let batch = n > 1 ? "\(n)B " : ""
            return BenchCase(name: "conv3x3 \(batch)\(hw)x\(hw)x\(cin)->\(cout) fwd", flops: 2 * Double(n * hw * hw * cin * cout * 9)) {
                let x = benchTensor([n, hw, hw, cin], seed: 4), w = benchTensor([3, 3, cin, cout], seed: 5)
                return { _ = try? conv2d(x, weight: w, bias: nil, stride: 1, padding: 1) }
            }
        }
}

/// The weight gradient alone of LoRA down convolutions (3×3, Cin → rank), the only gradient a frozen layer's
/// adapter needs of that shape: the embedded model's at rank 8, batch 2, as the main job trains
/// (`conv3x3 2B 64x64x32->8 dW`), and SD-1.5's widest levels at ranks 16–64 (LoCon / LyCORIS conv adapters); and
/// the embedded model's own convolutions as `train-base` trains them (batch 16, ≤ 64 output channels: the narrow
/// kernel in row chunks).
func loraConvWeightGradientCases() -> [BenchCase] {
    [(2, 64, 32, 8), (2, 32, 64, 8), (2, 16, 128, 8), (1, 64, 320, 16), (1, 32, 640, 32), (1, 16, 1280, 64),
     (2, 64, 32, 32), (1, 64, 320, 64), (16, 64, 32, 32), (16, 32, 64, 64), (16, 64, 96, 32),
     (16, 32, 192, 64)].map { n, hw, cin, cout -> BenchCase in
        let batch = n > 1 ? "\(n)B " : ""
        return BenchCase(name: "conv3x3 \(batch)\(hw)x\(hw)x\(cin)->\(cout) dW", flops: 2 * Double(n * hw * hw * cin * cout * 9)) {
            let x = benchTensor([n, hw, hw, cin], seed: 4), dy = benchTensor([n, hw, hw, cout], seed: 7)
            return { _ = try? conv2dBackwardWeight(dy, input: x, kernelHeight: 3, kernelWidth: 3, stride: 1, padding: 1) }
        }
    }
}

/// `--precision bf16`'s products (CBFloat16, where the CPU has AVX512-BF16): `bf16 linear MxKxN` is x · Wᵀ with x
/// [M, K] in F32 (rounded to BF16 each call, as a layer does) and W [N, K] packed once; `bf16 conv3x3 …` the
/// forward convolution with bias. None on other CPUs.
func bfloat16BenchCases() -> [BenchCase] {
    guard BFloat16Compute.isAvailable else { return [] }
    let linear = [(4096, 320, 320), (4096, 2880, 320), (256, 11520, 1280), (64, 1280, 1280)].map {
        (m: Int, k: Int, n: Int) -> BenchCase in
        BenchCase(name: "bf16 linear \(m)x\(k)x\(n)", flops: 2 * Double(m * n * k)) {
            let x = benchTensor([m, k], seed: 1)
            guard let w = BFloat16Weight.linear(benchTensor([n, k], seed: 2)) else { preconditionFailure("odd K") }
            return { _ = try? bfloat16Linear(x, weight: w, bias: nil) }
        }
    }
    let conv = [(64, 320, 320), (32, 640, 640), (16, 1280, 1280)].map { (hw: Int, cin: Int, cout: Int) -> BenchCase in
        let flops = 2 * Double(hw * hw * cin * cout * 9)
        return BenchCase(name: "bf16 conv3x3 \(hw)x\(hw)x\(cin)->\(cout) fwd", flops: flops) {
            let x = benchTensor([1, hw, hw, cin], seed: 4), b = benchTensor([cout], seed: 6)
            guard let w = BFloat16Weight.convolution(benchTensor([3, 3, cin, cout], seed: 5)) else { preconditionFailure("odd Cin") }
            return { _ = try? bfloat16Conv2d(x, weight: w, kernelHeight: 3, kernelWidth: 3, bias: b, stride: 1, padding: 1) }
        }
    }
    return linear + conv
}
