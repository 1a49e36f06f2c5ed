// `bench unet … --lora rank=R`: what LoRA adapters cost in a UNet forward. Rounds interleave the cases
// (base, one adapter unfused, the same fused, N per-image adapters) and report medians and ratios to base
// and to the shared adapter. Adapters target the attention projections (to_q, to_k, to_v, to_out.0) with
// random nonzero B.
import Adapters
import Autograd
import DiffusionModels
import Foundation
import NN
import TensorCore

func loraUNetBench(_ unet: UNet2DConditionModel, spec: String, sample: Variable, context: Variable, rounds: Int) throws {
    guard spec.hasPrefix("rank="), let rank = Int(spec.dropFirst(5)), rank > 0 else {
        throw AdaptersError.invalidSpec(spec: spec, reason: "--lora takes rank=R")
    }
    let batch = sample.shape[0]
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
        try timeThrowingLoRA { _ = try withNoGrad { try unet(sample, timesteps: [500], context: context) } }
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
        for (i, n) in stack.adapterNames.enumerated() {
            try stack.setRowWeights((0..<batch).map { $0 == i ? 1 : 0 }, for: n)
        }
        times[3].append(try forward())
        for n in stack.adapterNames { try stack.setRowWeights(nil, for: n) }
        print("round \(round + 1): " + zip(cases, times).map { String(format: "%@ %.2f s", $0, $1.last!) }.joined(separator: ", "))
    }
    let m = times.map(median)
    print(String(format: "LoRA rank %d on to_q/to_k/to_v/to_out.0, batch %d, medians of %d rounds:", rank, batch, rounds))
    for (name, t) in zip(cases, m) {
        print(String(format: "  %-24@ %7.3f s  %.3f× base", name, t, t / m[0]))
    }
    print(String(format: "  per-image / shared adapter: %.3f×", m[3] / m[1]))
}

private func timeThrowingLoRA(_ body: () throws -> Void) throws -> Double {
    var failure: Error?
    let t = timeOnce { do { try body() } catch { failure = error } }
    if let failure { throw failure }
    return t
}
