// Fixtures of the model tests: the diffusers weights and golden inputs/outputs of make_model_goldens.py.
import Autograd
import DiffusionModels
import Foundation
import NN
import SafeTensors
import TensorCore

/// A file or folder under `Tests/DiffusionModelsTests/Fixtures/`, made by Tests/Reference/make_model_goldens.py.
func fixtureURL(_ relativePath: String) -> URL {
    Bundle.module.resourceURL!.appendingPathComponent("Fixtures").appendingPathComponent(relativePath)
}

/// A fixture folder: the diffusers weights and the golden inputs/outputs (NCHW).
struct Fixture {
    let weights: [String: Tensor]
    let golden: SafeTensorsFile

    init(_ name: String) throws {
        weights = try SafeTensorsFile(path: fixtureURL("\(name)/diffusion_pytorch_model.safetensors").path).loadAll()
        golden = try SafeTensorsFile(path: fixtureURL("\(name)/golden.safetensors").path)
    }

    func tensor(_ name: String) throws -> Tensor { try golden.tensor(name) }

    /// An NCHW golden as an NHWC variable.
    func nhwc(_ name: String) throws -> Variable { Variable(try FeatureLayout.nhwc(fromNCHW: tensor(name))) }
}
