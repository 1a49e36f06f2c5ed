// What `lora` reads and writes through DiffusersFolder: module indexes from the weight headers (key accounting
// without loading the models) and a copy of the folder with an adapter baked in, which loads and computes
// what the base with the adapter computes.
import Adapters
import Autograd
import DiffusionModels
import Pipeline
import TensorCore
import TestSupport
import XCTest

final class PipelineAdaptersTests: XCTestCase {
    func testModuleIndexesAndFusedCopy() throws {
        let folder = try DiffusersFolder(path: TestPaths.pipelineFixture("tiny-sd"))
        let indexes = try folder.moduleIndexes()
        XCTAssertEqual(indexes.map(\.component), [.unet, .textEncoder])

        // A rank-4 adapter on the UNet attention with nonzero B, written as a kohya file.
        let source = try StableDiffusionModel(path: TestPaths.pipelineFixture("tiny-sd"))
        let stack = AdapterStack(root: source.unet, component: .unet)
        var random = PhiloxRandom(seed: 3)
        try stack.addTrainable(name: "a", rank: 4, targets: .unetAttention, random: &random)
        for (_, _, pair) in stack.pairs(of: "a") { pair.up.value = random.normal(shape: pair.up.shape, std: 0.5) }
        let scratch = try temporaryDirectory("fused")
        let file = scratch.appendingPathComponent("a.safetensors").path
        try LoRAWriter.write(try stack.export("a"), to: file, info: LoRAFileInfo())

        let resolved = try LoRAFile(contentsOf: file).resolve(against: indexes)
        XCTAssertTrue(resolved.accounting.unmatched.isEmpty)
        let output = scratch.appendingPathComponent("fused").path
        try folder.writeFused([(resolved, 0.7)], to: output)
        XCTAssertThrowsError(try folder.writeFused([(resolved, 0.7)], to: output), "an existing output is refused")

        let fused = try StableDiffusionModel(path: output)
        let base = try StableDiffusionModel(path: TestPaths.pipelineFixture("tiny-sd"))
        try AdapterSet(unet: base.unet, textEncoder: nil).load(LoRAFile(contentsOf: file), name: "a", unetWeight: 0.7)
        let x = Variable(random.normal(shape: [1, 8, 8, 4]))
        let c = Conditioning(context: Variable(random.normal(shape: [1, 77, base.textEncoder.config.hiddenSize])))
        let (a, b) = try withNoGrad {
            (try fused.unet(x, timesteps: [500], conditioning: c).value, try base.unet(x, timesteps: [500], conditioning: c).value)
        }
        // The fused copy keeps F16 weights: the baked sum is rounded to F16.
        try assertClose(a, b, tolerance: 5e-3, nhwcAgainstNCHW: false, "fused copy vs base + adapter at 0.7")
        XCTAssertGreaterThan(maxAbsDifference(a, try withNoGrad {
            try StableDiffusionModel(path: TestPaths.pipelineFixture("tiny-sd")).unet(x, timesteps: [500], conditioning: c).value
        }), 1e-3, "the adapter changed the fused weights")
    }
}
