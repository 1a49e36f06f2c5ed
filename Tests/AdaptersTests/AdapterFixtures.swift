// Fixtures of the adapter tests: the tiny UNet of DiffusionModelsTests, the tiny CLIP of CLIPTextTests, and the
// adapters and goldens made by Tests/Reference/make_lora_goldens.py.
import Adapters
import Autograd
import CLIPText
import DiffusionModels
import Foundation
import NN
import SafeTensors
import TensorCore
import TestSupport

func adapterFixture(_ name: String) -> String { TestPaths.tests("AdaptersTests/Fixtures/\(name)") }

/// The SD-1-like tiny UNet (F16-rounded weights) in evaluation mode.
func loadTinyUNet(_ name: String = "unet_sd1") throws -> UNet2DConditionModel {
    let folder = TestPaths.tests("DiffusionModelsTests/Fixtures/\(name)")
    let unet = UNet2DConditionModel(config: try UNet2DConditionConfig(contentsOf: URL(fileURLWithPath: folder + "/config.json")))
    try unet.load(stateDict: SafeTensorsFile(path: folder + "/diffusion_pytorch_model.safetensors").loadAll())
    unet.eval()
    return unet
}

/// The tiny SD-1 CLIP text encoder (checkpoint with `text_model.`; our paths have none).
func loadTinyCLIP() throws -> CLIPTextModel {
    let folder = TestPaths.tests("CLIPTextTests/Fixtures/clip_sd1_quick_gelu")
    let model = try CLIPTextModel(config: CLIPTextConfig(contentsOf: URL(fileURLWithPath: folder + "/config.json")))
    try model.loadCheckpoint(SafeTensorsFile(path: folder + "/model.safetensors").loadAll())
    model.eval()
    return model
}

/// The golden inputs and outputs of make_lora_goldens.py.
struct Goldens {
    let file: SafeTensorsFile
    init() throws { file = try SafeTensorsFile(path: adapterFixture("goldens.safetensors")) }
    func tensor(_ name: String) throws -> Tensor { try file.tensor(name) }

    /// The UNet on the golden batch at t = 500 (NHWC output).
    func runUNet(_ unet: UNet2DConditionModel) throws -> Tensor {
        let sample = Variable(try FeatureLayout.nhwc(fromNCHW: tensor("unet_sample")))
        let context = Variable(try tensor("unet_context"))
        return try withNoGrad { try unet(sample, timesteps: [500, 500], conditioning: Conditioning(context: context)) }.value
    }

    /// The text encoder's last hidden state on the golden ids.
    func runTextEncoder(_ model: CLIPTextModel) throws -> Tensor {
        let t = try tensor("te_input_ids")
        let ids = (0..<t.shape[0]).map { i in (0..<t.shape[1]).map { Int(t.scalars[i * t.shape[1] + $0]) } }
        return try withNoGrad { try model(ids) }.lastHiddenState.value
    }
}

/// Every checkpoint parameter's values by key, for exact before/after comparisons.
func snapshot(_ model: Module) -> [String: [Float]] { model.stateDict().mapValues(\.scalars) }
