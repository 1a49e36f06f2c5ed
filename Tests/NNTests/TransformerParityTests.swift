import Foundation
import XCTest
import Autograd
import TensorCore
@testable import NN

/// A tiny transformer block plus a GroupNorm/Conv2d head, mirroring Tests/Reference/nn_transformer_block.py.
private final class Block: Module {
    let norm1: LayerNorm, attn1: NN.Attention
    let norm2: LayerNorm, attn2: NN.Attention
    let norm3: LayerNorm, ff_proj: Linear, ff_out: Linear
    let gn: GroupNorm, conv: Conv2d
    let height: Int, width: Int

    init(_ c: Fixture.Config) {
        norm1 = LayerNorm(dim: c.C)
        attn1 = NN.Attention(queryDim: c.C, heads: c.heads, dimHead: c.C / c.heads)
        norm2 = LayerNorm(dim: c.C)
        attn2 = NN.Attention(queryDim: c.C, contextDim: c.context, heads: c.heads, dimHead: c.C / c.heads)
        norm3 = LayerNorm(dim: c.C)
        ff_proj = Linear(inFeatures: c.C, outFeatures: 2 * c.ff)
        ff_out = Linear(inFeatures: c.ff, outFeatures: c.C)
        gn = GroupNorm(groups: 4, channels: c.C, eps: 1e-6)
        conv = Conv2d(inChannels: c.C, outChannels: 4, kernelSize: 3, padding: 1)
        (height, width) = (c.H, c.W)
        super.init()
    }

    /// x [N, L, C], context [N, Lc, Cc] → [N, H, W, 4].
    func callAsFunction(_ x: Variable, context: Variable) throws -> Variable {
        var h = try x + attn1(norm1(x))
        h = try h + attn2(norm2(h), context: context)
        h = try h + ff_out(geglu(ff_proj(norm3(h))))
        let image = try reshape(h, [x.shape[0], height, width, x.shape[2]])     // tokens are NHWC pixels
        return try conv(silu(gn(image)))
    }
}

private struct Fixture: Decodable {
    struct Config: Decodable { let N, H, W, C, context, contextLength, heads, ff: Int }
    struct Stored: Decodable {
        let shape: [Int]
        let data: [Float]
        func tensor() throws -> Tensor { try Tensor(shape: shape, scalars: data) }
    }
    let config: Config
    let state_dict: [String: Stored]
    let x, context, output, projection, grad_x, grad_context: Stored
    let grads: [String: Stored]
}

/// Golden values from Tests/Reference/nn_transformer_block.py (torch 2.13 + diffusers 0.42.1, float64).
final class TransformerParityTests: XCTestCase {
    private func assertClose(_ actual: Tensor, _ expected: Tensor, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(actual.shape, expected.shape, what, file: file, line: line)
        guard actual.shape == expected.shape else { return }
        var worst = 0, worstError: Float = 0
        for i in 0..<actual.count {
            let e = abs(actual[flat: i] - expected[flat: i]) / (1e-3 + abs(expected[flat: i]))
            if e > worstError { worstError = e; worst = i }
        }
        XCTAssertLessThan(worstError, 2e-3, "\(what): flat \(worst) is \(actual[flat: worst]), expected \(expected[flat: worst])",
                          file: file, line: line)
    }

    func testForwardAndGradientsMatchPyTorch() throws {
        try checkBlock(checkpointed: false)
    }

    /// The same block under gradient checkpointing gives the same output and gradients.
    func testCheckpointedBlockMatchesPyTorch() throws {
        try checkBlock(checkpointed: true)
    }

    private func checkBlock(checkpointed: Bool) throws {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/transformer_block", withExtension: "json"))
        let fixture = try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
        let block = Block(fixture.config)
        try block.load(stateDict: fixture.state_dict.mapValues { try $0.tensor() })

        let x = Variable(try fixture.x.tensor(), requiresGrad: true)
        let context = Variable(try fixture.context.tensor(), requiresGrad: true)
        let out = checkpointed
            ? try checkpoint([x, context]) { [try block($0[0], context: $0[1])] }[0]
            : try block(x, context: context)                                   // NHWC
        XCTAssertEqual(out.operation, checkpointed ? "checkpoint" : "conv2d")
        assertClose(try nhwcToNCHW(out.value), try fixture.output.tensor(), "output")

        try out.backward(try nchwToNHWC(fixture.projection.tensor()))
        assertClose(try XCTUnwrap(x.grad), try fixture.grad_x.tensor(), "dx")
        assertClose(try XCTUnwrap(context.grad), try fixture.grad_context.tensor(), "dcontext")
        let parameters = Dictionary(uniqueKeysWithValues: block.namedParameters())
        XCTAssertEqual(Set(parameters.keys), Set(fixture.grads.keys))
        for (key, expected) in fixture.grads {
            let p = try XCTUnwrap(parameters[key])
            var g = try XCTUnwrap(p.grad, key)
            if key == "conv.weight" { g = try convWeightToOIHW(g) }
            assertClose(g, try expected.tensor(), key)
        }
    }
}
