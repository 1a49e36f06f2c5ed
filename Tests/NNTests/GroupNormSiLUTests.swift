// GroupNorm's fused SiLU (`GroupNorm.silu`, what the ResNet blocks, the UNet's and VAE's output heads and the judge
// call) against the two separate operations it replaces: the output and every gradient equal bit for bit, for a
// group of one chunk of pixels and for several chunks (the statistics are summed per 256-pixel chunk).
import XCTest
import Autograd
import TensorCore
@testable import NN

final class GroupNormSiLUTests: XCTestCase {
    func testFusedSiLUEqualsSeparateOperationsBitForBit() throws {
        var random = PhiloxRandom(seed: 11)
        for shape in [[2, 5, 7, 24], [1, 20, 20, 24]] {
            let norm = GroupNorm(groups: 4, channels: 24)
            norm.weight!.value = random.normal(shape: [24])
            norm.bias!.value = random.normal(shape: [24])
            let input = random.normal(shape: shape, std: 3)
            let outputWeights = Variable(random.normal(shape: shape))
            func run(_ body: (Variable) throws -> Variable) throws -> (output: Tensor, grads: [Tensor]) {
                let x = Variable(input, requiresGrad: true)
                norm.zeroGrad()
                let y = try body(x)
                try sum(mul(y, outputWeights)).backward()
                return (y.value, [x.grad!, norm.weight!.grad!, norm.bias!.grad!])
            }
            let fused = try run { try norm.silu($0) }
            let separate = try run { silu(try norm($0)) }
            XCTAssertEqual(fused.output.scalars, separate.output.scalars, "output \(shape)")
            for (name, (a, b)) in zip(["dx", "dγ", "dβ"], zip(fused.grads, separate.grads)) {
                XCTAssertEqual(a.scalars, b.scalars, "\(name) \(shape)")
                XCTAssertTrue(a.scalars.contains { $0 != 0 }, "\(name) \(shape) is not all zero")
            }
        }
    }
}
