// TextBench: the `text` suite. Times a CLIP text-encoder forward (77 tokens, batch 1, random weights,
// no gradient recording) and reports the median time, GFLOP/s and peak RSS; with `--torch` runs
// bench/torch_text.py (transformers' CLIPTextModel, 2 threads) between two halves of our rounds.
import Autograd
import CLIPText
import Foundation
import TensorCore

/// `bench text [--config clip-l|clip-h|tiny] [--rounds N] [--torch] [--python PATH]`.
func runTextBench(_ args: [String]) {
    do {
        try textBench(args)
    } catch {
        FileHandle.standardError.write("bench text: \(error)\n".data(using: .utf8)!)
        exit(1)
    }
}

/// Configurations by the names `bench text --config` and bench/torch_text.py share.
let textBenchConfigs: [String: CLIPTextConfig] = [
    "clip-l": .clipL,
    "clip-h": CLIPTextConfig(hiddenSize: 1024, intermediateSize: 4096, numHiddenLayers: 23, numAttentionHeads: 16,
                             hiddenAct: .gelu),
    "tiny": .tiny,
]

/// Multiply-adds ×2 of one forward over `length` tokens: projections, MLP, and QKᵀ + PV over all
/// L×L scores (as PyTorch's counter reports them; the causal kernel skips the upper half).
func textForwardFlops(_ c: CLIPTextConfig, length: Int) -> Double {
    let (l, d, i) = (Double(length), Double(c.hiddenSize), Double(c.intermediateSize))
    return Double(c.numHiddenLayers) * (8 * l * d * d + 4 * l * d * i + 4 * l * l * d)
}

/// Peak resident set size of this process in bytes.
func peakRSSBytes() -> Double {
    var usage = rusage()
    #if os(Linux)
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_maxrss) * 1024       // kilobytes on Linux
    #else
    getrusage(RUSAGE_SELF, &usage)
    return Double(usage.ru_maxrss)              // bytes on Darwin
    #endif
}

func textBench(_ args: [String]) throws {
    func value(_ flag: String) -> String? { args.firstIndex(of: flag).flatMap { $0 + 1 < args.count ? args[$0 + 1] : nil } }
    let name = value("--config") ?? "clip-l"
    guard let config = textBenchConfigs[name] else {
        FileHandle.standardError.write("bench text: unknown config '\(name)'; configs: \(textBenchConfigs.keys.sorted())\n"
            .data(using: .utf8)!)
        exit(2)
    }
    let rounds = Int(value("--rounds") ?? "") ?? 10
    let length = config.maxPositionEmbeddings
    let model = try CLIPTextModel(config: config)
    var random = PhiloxRandom(seed: 0)
    model.initializeParameters(random: &random)
    let ids = [[config.vocabSize - 2] + (1..<(length - 1)).map { ($0 * 7919) % (config.vocabSize - 2) } + [config.vocabSize - 1]]
    let run = { _ = try withNoGrad { try model.encode(ids) } }
    try run()
    var mine: [Double] = []
    for _ in 0..<(rounds + 1) / 2 { mine.append(try timed(run)) }
    var theirs: [String] = []
    if args.contains("--torch") {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: value("--python") ?? "/root/refenv/bin/python")
        process.arguments = [value("--script") ?? "bench/torch_text.py", "--config", name, "--rounds", String(rounds)]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        theirs = output.split(separator: "\n").map(String.init)
    }
    for _ in 0..<rounds / 2 { mine.append(try timed(run)) }
    let flops = textForwardFlops(config, length: length)
    let t = median(mine)
    print(String(format: "text %@ (%d tokens): %.4f s median of %d, %.1f GFLOP/s (%.2f GFLOP), peak RSS %.2f GB",
                 name, length, t, mine.count, flops / t * 1e-9, flops * 1e-9, peakRSSBytes() / 1e9))
    for line in theirs { print("torch: " + line) }
}

private func timed(_ body: () throws -> Void) throws -> Double {
    let t0 = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
}
