// What the report tests share: a scratch folder holding an attention adapter for the tiny pixel fixture with
// random nonzero up matrices (so "after" differs from "before") and a judge of random weights.
import Adapters
import Foundation
import Judge
import Pipeline
import TensorCore
import TestSupport

struct ReportFixtures {
    let root: URL
    let adapterPath: String
    var judgePath: String { root.appendingPathComponent("judge.safetensors").path }

    /// Creates `root` (a new folder under the temporary directory, named after `prefix`) with the adapter `name`
    /// (seeded by `seed`, written with `info`) and the judge.
    init(prefix: String, name: String, seed: UInt64, info: LoRAFileInfo) throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        adapterPath = root.appendingPathComponent("\(name).safetensors").path
        let model = try StableDiffusionModel(path: TestPaths.pipelineFixture("tiny-pixel"))
        let stack = AdapterStack(root: model.unet, component: .unet)
        var random = PhiloxRandom(seed: seed)
        try stack.addTrainable(name: name, rank: 2, targets: .unetAttention, random: &random)
        for (_, _, pair) in stack.pairs(of: name) { pair.up.value = random.normal(shape: pair.up.shape, std: 0.5) }
        try LoRAWriter.write(stack.export(name), to: adapterPath, info: info)
        try Judge(network: JudgeNetwork()).save(to: judgePath)
    }
}
