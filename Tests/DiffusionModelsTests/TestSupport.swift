// Shared helpers for the model tests: fixture locations, loading, and scale-aware comparison.
import Autograd
import DiffusionModels
import Foundation
import NN
import SafeTensors
import TensorCore
import XCTest

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

/// Asserts max|actual − expected| ≤ tolerance · max(1, max|expected|), and returns the achieved error relative
/// to that scale. With `nhwcAgainstNCHW` (the default) a rank-4 `actual` is NHWC and `expected` NCHW.
@discardableResult
func assertClose(_ actual: Tensor, _ expected: Tensor, tolerance: Float = 1e-4, nhwcAgainstNCHW: Bool = true,
                 _ label: String, file: StaticString = #filePath, line: UInt = #line) throws -> Float {
    let a = nhwcAgainstNCHW && expected.rank == 4 ? try FeatureLayout.nchw(fromNHWC: actual) : actual
    guard a.shape == expected.shape else {
        XCTFail("\(label): shape \(a.shape), expected \(expected.shape)", file: file, line: line)
        return .infinity
    }
    let x = a.scalars, y = expected.scalars
    var maxError: Float = 0, worst = 0, scale: Float = 1
    for i in y.indices {
        scale = max(scale, abs(y[i]))
        let e = abs(x[i] - y[i])
        if !(e <= maxError) { maxError = e; worst = i }
    }
    let relative = maxError / scale
    print("\(label): max |error| \(maxError) (\(relative) of scale \(scale))")
    XCTAssertLessThanOrEqual(relative, tolerance,
                             "\(label): element \(worst) is \(x[worst]), expected \(y[worst])", file: file, line: line)
    return relative
}
