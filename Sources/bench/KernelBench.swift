// KernelBench: the `kernels` suite. Times each case (median after warm-up), reports GFLOP/s and the share
// of the FMA peak this machine delivers right now (measured by `measureFMAPeak`), and with `--torch` runs
// bench/torch_kernels.py as a server and interleaves its timings with ours case by case.
// On a machine shared with other work, `--threads 1 --cpu-time` (both sides) compares CPU efficiency
// without counting the time either process spent descheduled.
//
// Cases come from providers, one per kernel family (`kernelBenchProviders`); a file adds its family by
// defining a `() -> [BenchCase]` function and listing it there.
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
let kernelBenchProviders: [() -> [BenchCase]] = [gemmBenchCases, convBenchCases, attentionBenchCases, groupNormBenchCases]

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

/// Peak FMA throughput in GFLOP/s on `threads` threads: 16 independent SIMD16 FMA chains per thread.
func measureFMAPeak(threads: Int, cpuTime: Bool, iterations: Int = 4_000_000, runs: Int = 3) -> Double {
    var best = 0.0
    for _ in 0..<runs {
        let seconds = timeOnce(cpuTime: cpuTime) {
            DispatchQueue.concurrentPerform(iterations: threads) { t in
                fmaChains(iterations: iterations, seed: Float(t + 1))
            }
        }
        best = max(best, Double(threads * iterations * 16 * 16 * 2) / seconds * 1e-9)
    }
    return best
}

@inline(never)
func fmaChains(iterations: Int, seed: Float) {
    let m = SIMD16<Float>(repeating: 0.999_999), d = SIMD16<Float>(repeating: 1e-7)
    var a0 = SIMD16<Float>(repeating: seed), a1 = a0 + 1, a2 = a0 + 2, a3 = a0 + 3
    var a4 = a0 + 4, a5 = a0 + 5, a6 = a0 + 6, a7 = a0 + 7, a8 = a0 + 8, a9 = a0 + 9
    var a10 = a0 + 10, a11 = a0 + 11, a12 = a0 + 12, a13 = a0 + 13, a14 = a0 + 14, a15 = a0 + 15
    for _ in 0..<iterations {
        a0 = a0.addingProduct(m, d); a1 = a1.addingProduct(m, d); a2 = a2.addingProduct(m, d)
        a3 = a3.addingProduct(m, d); a4 = a4.addingProduct(m, d); a5 = a5.addingProduct(m, d)
        a6 = a6.addingProduct(m, d); a7 = a7.addingProduct(m, d); a8 = a8.addingProduct(m, d)
        a9 = a9.addingProduct(m, d); a10 = a10.addingProduct(m, d); a11 = a11.addingProduct(m, d)
        a12 = a12.addingProduct(m, d); a13 = a13.addingProduct(m, d); a14 = a14.addingProduct(m, d)
        a15 = a15.addingProduct(m, d)
    }
    let s = ((a0 + a1) + (a2 + a3) + (a4 + a5) + (a6 + a7)) + ((a8 + a9) + (a10 + a11) + (a12 + a13) + (a14 + a15))
    if s.sum() == 42 { print("") }
}

/// bench/torch_kernels.py running in `--serve` mode: one case name per request, timings back as JSON.
final class TorchServer {
    private let process = Process()
    private let input = Pipe(), output = Pipe()
    private var buffer = Data()

    init(python: String, script: String, threads: Int, cpuTime: Bool) throws {
        process.executableURL = URL(fileURLWithPath: python)
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
    var description: String { "bench: \(self)" }
}

struct KernelResult {
    let name: String, flops: Double, seconds: [Double], torchSeconds: [Double]?
    /// FMA peak (GFLOP/s) measured just before the case, on the threads it used: on a shared machine the
    /// peak available changes by the second, so "% peak" compares the case with the peak of its moment.
    let peak: Double
}

/// `bench kernels [--json] [--torch] [--filter TEXT] [--rounds N] [--threads N] [--skip-peak] [--cpu-time]
/// [--python PATH] [--script PATH]`.
func runKernelBench(_ a: BenchArguments) throws {
    try Parallel.$maxThreads.withValue(try a.int("--threads") ?? Parallel.maxThreads) { try kernelBench(a) }
}

func kernelBench(_ a: BenchArguments) throws {
    let json = a.has("--json"), withTorch = a.has("--torch")
    let filter = a.string("--filter")
    let rounds = try a.int("--rounds") ?? 3
    let python = a.string("--python") ?? "/root/refenv/bin/python"
    let script = a.string("--script") ?? "bench/torch_kernels.py"

    let skipPeak = a.has("--skip-peak"), cpuTime = a.has("--cpu-time")
    let peak1 = skipPeak ? .nan : measureFMAPeak(threads: 1, cpuTime: cpuTime)
    let peak2 = skipPeak ? .nan : measureFMAPeak(threads: 2, cpuTime: cpuTime)
    let torch = withTorch ? try TorchServer(python: python, script: script, threads: Parallel.maxThreads,
                                            cpuTime: cpuTime) : nil
    defer { torch?.close() }
    if !json {
        let timing = cpuTime ? "process CPU time (GFLOP per CPU-second)" : "wall clock"
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
                  (4096, 320, 320, true), (64, 1280, 1280, true)]
    return shapes.map { m, k, n, transB in
        BenchCase(name: "sgemm \(m)x\(k)x\(n)\(transB ? " Bt" : "")", flops: 2 * Double(m * n * k)) {
            let a = benchBuffer(m * k, seed: 1), b = benchBuffer(k * n, seed: 2), c = benchBuffer(m * n, seed: 3)
            return {
                sgemm(transA: false, transB: transB, m: m, n: n, k: k, alpha: 1, a: a, lda: k, b: b,
                      ldb: transB ? k : n, beta: 0, c: c, ldc: n)
            }
        }
    }
}

/// 3x3, stride 1, pad 1 convolutions with bias, named `conv3x3 HxWxCin->Cout fwd|bwd`; `bwd` computes
/// the input, weight and bias gradients.
func convBenchCases() -> [BenchCase] {
    [(64, 320, 320), (32, 640, 640), (16, 1280, 1280)].flatMap { hw, cin, cout -> [BenchCase] in
        let flops = 2 * Double(hw * hw * cin * cout * 9)
        let base = "conv3x3 \(hw)x\(hw)x\(cin)->\(cout)"
        return [
            BenchCase(name: base + " fwd", flops: flops) {
                let x = benchTensor([1, hw, hw, cin], seed: 4), w = benchTensor([3, 3, cin, cout], seed: 5)
                let b = benchTensor([cout], seed: 6)
                return { _ = try? conv2d(x, weight: w, bias: b, stride: 1, padding: 1) }
            },
            BenchCase(name: base + " bwd", flops: 2 * flops) {
                let x = benchTensor([1, hw, hw, cin], seed: 4), w = benchTensor([3, 3, cin, cout], seed: 5)
                let dy = benchTensor([1, hw, hw, cout], seed: 7)
                return {
                    _ = try? conv2dBackwardInput(dy, weight: w, inputShape: x.shape, stride: 1, padding: 1)
                    _ = try? conv2dBackwardWeight(dy, input: x, kernelHeight: 3, kernelWidth: 3, stride: 1, padding: 1)
                    _ = try? conv2dBackwardBias(dy)
                }
            },
        ]
    }
}
