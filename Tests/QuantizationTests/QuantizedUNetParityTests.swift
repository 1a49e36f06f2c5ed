// A 4-bit UNet against diffusers + bitsandbytes (Tests/Reference/make_qlora_goldens.py): the folders diffusers
// saves load (NF4; FP4 with double quantization), quantizing tiny-sd at load gives the same bytes, the
// pipeline's latents and image equal diffusers' StableDiffusionPipeline with a BitsAndBytesConfig UNet, and
// saving writes diffusers' format back.
import Autograd
import DiffusionModels
import Foundation
import NN
import Pipeline
import SafeTensors
import Schedulers
import TensorCore
import TestSupport
import XCTest

final class QuantizedUNetParityTests: XCTestCase {
    static let prompt = "a photo of sks dog in the snow", negative = "blurry, low quality"

    /// tiny-sd copied into a scratch folder with its unet/ replaced by the fixture `unetFolder`.
    func pipelineFolder(unet unetFolder: String) throws -> URL {
        let dir = try temporaryDirectory("qlora")
        let model = dir.appendingPathComponent("tiny-sd")
        try FileManager.default.copyItem(atPath: TestPaths.pipelineFixture("tiny-sd"), toPath: model.path)
        let unet = model.appendingPathComponent("unet")
        try FileManager.default.removeItem(at: unet)
        try FileManager.default.copyItem(atPath: TestPaths.tests("QuantizationTests/Fixtures/\(unetFolder)"), toPath: unet.path)
        return model
    }

    func goldens() throws -> SafeTensorsFile {
        try SafeTensorsFile(path: TestPaths.tests("QuantizationTests/Fixtures/qlora_goldens.safetensors"))
    }

    func eulerLatents(_ model: StableDiffusionModel) throws -> Tensor {
        let initial = try FeatureLayout.nhwc(fromNCHW: SafeTensorsFile(
            path: TestPaths.pipelineFixture("latents_goldens.safetensors")).tensor("init_latents"))
        let p = GenerationParameters(prompt: Self.prompt, negativePrompt: Self.negative, steps: 10, guidanceScale: 7.5,
                                     sampler: .euler, width: 32, height: 32)
        return try FeatureLayout.nchw(fromNHWC: TextToImage(model: model).denoise(p, initialNoise: initial))
    }

    func assertLatents(_ actual: Tensor, _ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let expected = try goldens().tensor("latents." + name)
        let error = maxAbsDifference(actual, expected), scale = maxAbs(expected)
        print("\(name): max error \(error) at scale \(scale)")
        XCTAssertLessThanOrEqual(error, 1e-4 * scale, "\(name): max error \(error) at scale \(scale)", file: file, line: line)
    }

    func testDiffusersNF4FolderLoadsAndMatchesThePipeline() throws {
        let model = try StableDiffusionModel(path: pipelineFolder(unet: "unet-nf4").path)
        let summary = model.unet.quantizedSummary()
        XCTAssertGreaterThan(summary.layers, 0)
        XCTAssertEqual(summary.layers, model.unet.namedModules().filter { $0.1 is Linear }.count)
        try assertLatents(eulerLatents(model), "euler_nf4")
    }

    func testDiffusersFP4DoubleQuantizedFolderMatchesThePipeline() throws {
        let model = try StableDiffusionModel(path: pipelineFolder(unet: "unet-fp4-nested").path)
        try assertLatents(eulerLatents(model), "euler_fp4_nested")
    }

    /// Quantizing the F32 tiny-sd at load gives diffusers' bytes, hence the same latents.
    func testQuantizingAtLoadEqualsDiffusersQuantization() throws {
        let model = try StableDiffusionModel(path: TestPaths.pipelineFixture("tiny-sd"))
        try model.unet.quantize(UNetQuantization(type: .nf4, doubleQuantization: false))
        let file = try SafeTensorsFile(path: TestPaths.tests("QuantizationTests/Fixtures/unet-nf4/diffusion_pytorch_model.safetensors"))
        for (path, linear) in model.unet.quantizedLinearLayers() {
            let q = try XCTUnwrap(linear.quantizedWeight)
            XCTAssertEqual(q.packed, try file.withRawBytes(of: path + ".weight") { Array($0) }, path)
            XCTAssertEqual(q.scales, try file.tensor(path + ".weight.absmax").scalars, path)
        }
        try assertLatents(eulerLatents(model), "euler_nf4")
    }

    /// `--rng torch` image against diffusers': mean |Δ| ≤ 1 level of 255.
    func testTorchGeneratorImageMatchesDiffusers() throws {
        let model = try StableDiffusionModel(path: pipelineFolder(unet: "unet-nf4").path)
        let p = GenerationParameters(prompt: Self.prompt, negativePrompt: Self.negative, steps: 10, guidanceScale: 7.5,
                                     sampler: .euler, seed: 1234, rng: .torch, width: 32, height: 32)
        let image = try XCTUnwrap(TextToImage(model: model).generate(p).first).image
        let expected = try goldens().tensor("image.euler_nf4")
        let diff = expected.withUnsafeBufferPointer { e in
            (0..<e.count).reduce(0.0) { $0 + abs(Double(image.pixels[$1]) - Double(e[$1]) * 255) }
        } / Double(expected.count)
        print("image.euler_nf4: mean |Δ| \(diff) levels")
        XCTAssertLessThanOrEqual(diff, 1)
    }

    /// Saving writes diffusers' 4-bit tensors and quant states byte for byte, and the folder loads back.
    func testSaveWritesDiffusersFormat() throws {
        for folder in ["unet-nf4", "unet-fp4-nested"] {
            let model = try StableDiffusionModel(path: pipelineFolder(unet: folder).path)
            let source = TestPaths.tests("QuantizationTests/Fixtures/\(folder)")
            let q = try XCTUnwrap(UNetQuantization.read(configPath: source + "/config.json"))
            let out = try temporaryDirectory("saved").appendingPathComponent("unet")
            try QuantizedCheckpoint.saveUNet(model.unet, configPath: source + "/config.json", quantization: q, to: out)
            let saved = try SafeTensorsFile(path: out.appendingPathComponent("diffusion_pytorch_model.safetensors").path)
            let original = try SafeTensorsFile(path: source + "/diffusion_pytorch_model.safetensors")
            XCTAssertEqual(Set(saved.names), Set(original.names), folder)
            for name in original.names where try original.info(name).dtype != .f16 {
                XCTAssertEqual(try saved.withRawBytes(of: name) { Array($0) }, try original.withRawBytes(of: name) { Array($0) },
                               "\(folder): \(name)")
            }
            XCTAssertEqual(try UNetQuantization.read(configPath: out.appendingPathComponent("config.json").path), q)
        }
    }

    /// A copy of the nf4 fixture's weights with `edit` applied to the raw tensors, in a pipeline folder.
    func editedFolder(_ edit: (inout [(String, DType, [Int], [UInt8])]) -> Void) throws -> URL {
        let model = try pipelineFolder(unet: "unet-nf4")
        let path = model.appendingPathComponent("unet/diffusion_pytorch_model.safetensors").path
        let file = try SafeTensorsFile(path: path)
        var tensors = try file.names.map { name -> (String, DType, [Int], [UInt8]) in
            let info = try file.info(name)
            return (name, info.dtype, info.shape, try file.withRawBytes(of: name) { Array($0) })
        }
        edit(&tensors)
        var writer = SafeTensorsWriter()
        for (name, dtype, shape, bytes) in tensors { try writer.add(name, dtype: dtype, shape: shape, bytes: bytes) }
        try writer.write(to: path)
        return model
    }

    func testMissingQuantStateIsOneLineError() throws {
        let layer = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight"
        let folder = try editedFolder { $0.removeAll { $0.0 == layer + ".absmax" } }
        XCTAssertThrowsError(try StableDiffusionModel(path: folder.path)) { error in
            let line = "\(error)"
            XCTAssertTrue(line.contains("\(layer) is 4-bit but its quant state lacks \(layer).absmax"), line)
            XCTAssertFalse(line.contains("\n"), line)
        }
        let noState = try editedFolder { $0.removeAll { $0.0.hasPrefix(layer + ".") } }
        XCTAssertThrowsError(try StableDiffusionModel(path: noState.path)) { error in
            XCTAssertTrue("\(error)".contains("\(layer) is U8 (4-bit codes) but has no"), "\(error)")
        }
    }

    func testUnsupportedBlockSizeIsOneLineError() throws {
        let key = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight.quant_state.bitsandbytes__nf4"
        let folder = try editedFolder { tensors in
            guard let i = tensors.firstIndex(where: { $0.0 == key }) else { return }
            let json = String(decoding: tensors[i].3, as: UTF8.self).replacingOccurrences(of: "\"blocksize\": 64",
                                                                                          with: "\"blocksize\": 100")
            tensors[i].3 = Array(json.utf8)
            tensors[i].2 = [tensors[i].3.count]
        }
        XCTAssertThrowsError(try StableDiffusionModel(path: folder.path)) { error in
            XCTAssertTrue("\(error)".contains("4-bit block size 100 is not one bitsandbytes produces"), "\(error)")
        }
    }
}

final class QuantizedUNetForwardTests: XCTestCase {
    /// The 4-bit UNet equals the F32 UNet whose Linear weights are the dequantized 4-bit ones, layer by layer.
    func testQuantizedUNetEqualsItsDequantizedF32Twin() throws {
        let quantized = try StableDiffusionModel(path: TestPaths.pipelineFixture("tiny-sd"))
        let twin = try StableDiffusionModel(path: TestPaths.pipelineFixture("tiny-sd"))
        try quantized.unet.quantize(UNetQuantization(type: .nf4, doubleQuantization: true))
        for (path, linear) in quantized.unet.quantizedLinearLayers() {
            let f32 = try XCTUnwrap(twin.unet.module(at: path) as? Linear)
            f32.weight.value = linear.quantizedWeight!.dequantized()
            let x = uniformTensor([3, 5, linear.inFeatures], seed: 11)
            let error = maxAbsDifference(try linear(Variable(x)).value, try f32(Variable(x)).value)
            XCTAssertLessThanOrEqual(error, 1e-5, path)
        }
        let sample = uniformTensor([2, 16, 16, 4], seed: 3)
        let context = Conditioning(context: Variable(uniformTensor([2, 77, 32], seed: 4)))
        let a = try quantized.unet(Variable(sample), timesteps: [500, 500], conditioning: context).value
        let b = try twin.unet(Variable(sample), timesteps: [500, 500], conditioning: context).value
        try assertClose(a, b, tolerance: 1e-5, nhwcAgainstNCHW: false, "4-bit UNet vs dequantized F32 UNet")
    }
}

extension QuantizedUNetParityTests {
    /// One UNet call against bitsandbytes' Linear4bit forward (dequantize_4bit + F32 matmul).
    func testUNetForwardMatchesBitsandbytes() throws {
        let model = try StableDiffusionModel(path: pipelineFolder(unet: "unet-nf4").path)
        let g = try goldens()
        let sample = try FeatureLayout.nhwc(fromNCHW: g.tensor("unet.sample"))
        let out = try model.unet(Variable(sample), timesteps: [500, 500],
                                 conditioning: Conditioning(context: Variable(g.tensor("unet.context")))).value
        try assertClose(out, g.tensor("unet.out_nf4"), tolerance: 1e-5, "NF4 UNet forward")
    }
}
