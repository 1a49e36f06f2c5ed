// TextBench: the `text` suite. Times a CLIP text-encoder forward (77 tokens, batch 1, random weights,
// no gradient recording) and reports the median time, GFLOP/s and peak RSS; with `--torch` runs
// bench/torch_text.py (transformers' CLIPTextModel, 2 threads) between two halves of our rounds.
import Autograd
import CLI
import CLIPText
import Foundation
import SafeTensors
import TensorCore

/// `bench text [--config clip-l|clip-h|tiny] [--rounds N] [--torch] [--python PATH] [--weights DIR]`.
/// `--weights DIR` loads DIR/model.safetensors (from `bench/torch_text.py --save DIR`) instead of random
/// weights and first compares the output with DIR/goldens.safetensors.
func runTextBench(_ a: BenchArguments) throws { try textBench(a) }

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

func textBench(_ a: BenchArguments) throws {
    let name = a.string("--config") ?? "clip-l"
    guard let config = textBenchConfigs[name] else {
        throw CommandLineError.usage("unknown config '\(name)'; configs: \(textBenchConfigs.keys.sorted())")
    }
    let rounds = try a.int("--rounds") ?? 10
    let length = config.maxPositionEmbeddings
    let model = try CLIPTextModel(config: config)
    let weights = a.string("--weights").map { URL(fileURLWithPath: $0) }
    if let weights {
        try model.loadCheckpoint(SafeTensorsFile(path: weights.appendingPathComponent("model.safetensors").path).loadAll())
    } else {
        var random = PhiloxRandom(seed: 0)
        model.initializeParameters(random: &random)
    }
    let ids = [[config.vocabSize - 2] + (1..<(length - 1)).map { ($0 * 7919) % (config.vocabSize - 2) } + [config.vocabSize - 1]]
    let run = { _ = try withNoGrad { try model.encode(ids) } }
    if let weights {
        try checkTextParity(model, ids: ids, goldens: weights.appendingPathComponent("goldens.safetensors"))
    }
    try run()
    var mine: [Double] = []
    for _ in 0..<(rounds + 1) / 2 { mine.append(try timed(run)) }
    var theirs: [String] = []
    if a.has("--torch") {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: a.string("--python") ?? "/root/refenv/bin/python")
        process.arguments = [a.string("--script") ?? "bench/torch_text.py", "--config", name, "--rounds", String(rounds)]
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

/// Prints the largest |swift − torch| of `last_hidden_state` relative to max|torch|.
func checkTextParity(_ model: CLIPTextModel, ids: [[Int]], goldens: URL) throws {
    let expected = try SafeTensorsFile(path: goldens.path).tensor("last_hidden_state")
    let observed = try withNoGrad { try model(ids) }.lastHiddenState.value
    guard observed.shape == expected.shape else {
        throw CLIPTextError.invalidInput("golden shape \(expected.shape), output \(observed.shape)")
    }
    var scale: Float = 0, error: Float = 0
    for i in 0..<expected.count {
        scale = max(scale, abs(expected[flat: i]))
        error = max(error, abs(observed[flat: i] - expected[flat: i]))
    }
    print(String(format: "parity with torch: max |error| %.3g, max |torch| %.3g, relative %.3g", error, scale, error / scale))
}

private func timed(_ body: () throws -> Void) throws -> Double {
    let t0 = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
}
