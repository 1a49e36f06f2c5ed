// `bench unet … --lora rank=R`: what LoRA adapters cost in a UNet forward. Rounds interleave the cases
// (base, one adapter unfused, the same fused, N per-image adapters) and report medians and ratios to base
// and to the shared adapter. Adapters target the attention projections (to_q, to_k, to_v, to_out.0) with
// random nonzero B. `--cpu-time` measures process CPU time, steadier than wall time on a shared machine.
import Adapters
import Autograd
import DiffusionModels
import Foundation
import NN
import TensorCore

func loraUNetBench(_ unet: UNet2DConditionModel, spec: String, sample: Variable, context: Variable, rounds: Int,
                   cpuTime: Bool) throws {
    guard spec.hasPrefix("rank="), let rank = Int(spec.dropFirst(5)), rank > 0 else {
        throw AdaptersError.invalidSpec(spec: spec, reason: "--lora takes rank=R")
    }
    let batch = sample.shape[0]
    try loraLayerBench(rank: rank, rows: batch * 4096, features: 320, repeats: 30, cpuTime: cpuTime)
    let stack = AdapterStack(root: unet, component: .unet)
    var random = PhiloxRandom(seed: 7)
    for i in 0..<batch {
        try stack.addTrainable(name: "a\(i)", rank: rank, targets: .unetAttention, random: &random)
        for (_, _, pair) in stack.pairs(of: "a\(i)") {
            pair.down.requiresGrad = false
            pair.up.requiresGrad = false
            pair.up.value = random.normal(shape: pair.up.shape, std: 0.01)
        }
    }
    func only(_ name: String?) throws {
        for n in stack.adapterNames { try stack.setEnabled(n == name, for: n) }
    }
    func forward() throws -> Double {
        try timeThrowingLoRA(cpuTime: cpuTime) { _ = try withNoGrad { try unet(sample, timesteps: [500], conditioning: Conditioning(context: context)) } }
    }
    let cases = ["base", "unfused (1 adapter)", "fused", "per-image (\(batch) adapters)"]
    var times = Array(repeating: [Double](), count: cases.count)
    for round in 0..<rounds {
        try only(nil)
        times[0].append(try forward())
        try only("a0")
        times[1].append(try forward())
        try stack.fuse(["a0"])
        times[2].append(try forward())
        stack.unfuse()
        for n in stack.adapterNames { try stack.setEnabled(true, for: n) }
        let perImage = AdapterRowWeights(rows: Dictionary(uniqueKeysWithValues: stack.adapterNames.enumerated().map { i, n in
            (n, (0..<batch).map { $0 == i ? Float(1) : 0 })
        }))
        times[3].append(try perImage.apply { try forward() })
        print("round \(round + 1): " + zip(cases, times).map { String(format: "%@ %.2f s", $0, $1.last!) }.joined(separator: ", "))
    }
    let m = times.map(median)
    print(String(format: "LoRA rank %d on to_q/to_k/to_v/to_out.0, batch %d, medians of %d rounds (%@ time):",
                 rank, batch, rounds, cpuTime ? "CPU" : "wall"))
    for (name, t) in zip(cases, m) {
        print("  " + name.padding(toLength: 24, withPad: " ", startingAt: 0) + String(format: " %7.3f s  %.3f× base", t, t / m[0]))
    }
    print(String(format: "  per-image / shared adapter: %.3f×", m[3] / m[1]))
}

/// One projection of SD-1.5's first level (x [rows, 320] → 320), alone and with a rank-R adapter: the
/// per-layer cost the UNet figures hide in their noise. Medians of interleaved repeats.
func loraLayerBench(rank: Int, rows: Int, features: Int, repeats: Int, cpuTime: Bool) throws {
    var random = PhiloxRandom(seed: 3)
    let layer = Linear(inFeatures: features, outFeatures: features)
    layer.initializeParameters(random: &random)
    let x = Variable(random.normal(shape: [rows, features]))
    let stack = AdapterStack(root: layer, component: .unet)
    try stack.addTrainable(name: "a", rank: rank, targets: LoRATargets([""]), random: &random)
    for (_, _, pair) in stack.pairs(of: "a") { pair.up.value = random.normal(shape: pair.up.shape, std: 0.01) }
    var base: [Double] = [], adapted: [Double] = []
    for _ in 0..<repeats {
        try stack.setEnabled(false, for: "a")
        base.append(try timeThrowingLoRA(cpuTime: cpuTime) { _ = try withNoGrad { try layer(x) } })
        try stack.setEnabled(true, for: "a")
        adapted.append(try timeThrowingLoRA(cpuTime: cpuTime) { _ = try withNoGrad { try layer(x) } })
    }
    print(String(format: "Linear %d→%d on %d rows: %.2f ms, with a rank-%d adapter %.2f ms (%.3f×)", features, features, rows,
                 1e3 * median(base), rank, 1e3 * median(adapted), median(adapted) / median(base)))
    // A LoHa of the same rank runs through its full weight delta (one more GEMM of the layer's size).
    let loha = try LoHaFactors(tensors: ["hada_w1_a": random.normal(shape: [features, rank], std: 0.1),
                                         "hada_w1_b": random.normal(shape: [rank, features], std: 0.1),
                                         "hada_w2_a": random.normal(shape: [features, rank], std: 0.1),
                                         "hada_w2_b": random.normal(shape: [rank, features], std: 0.1)], alpha: Float(rank))
    try stack.setEnabled(false, for: "a")
    try stack.load([ResolvedModule(component: .unet, path: "", weights: LoRAModuleWeights(component: .unet, name: "", factors: loha))],
                   name: "h")
    var withLoHa: [Double] = []
    for _ in 0..<repeats {
        withLoHa.append(try timeThrowingLoRA(cpuTime: cpuTime) { _ = try withNoGrad { try layer(x) } })
    }
    print(String(format: "  with a rank-%d LoHa instead %.2f ms (%.3f× the bare layer)", rank, 1e3 * median(withLoHa),
                 median(withLoHa) / median(base)))
}

private func timeThrowingLoRA(cpuTime: Bool, _ body: () throws -> Void) throws -> Double {
    var failure: Error?
    let t = timeOnce(cpuTime: cpuTime) { do { try body() } catch { failure = error } }
    if let failure { throw failure }
    return t
}
