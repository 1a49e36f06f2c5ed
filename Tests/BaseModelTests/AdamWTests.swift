// AdamW against the update rule computed by hand (torch.optim.AdamW's algorithm), and state save/restore.
import Autograd
import NN
import TensorCore
import XCTest

final class AdamWTests: XCTestCase {
    func testTwoStepsMatchTheHandComputedRule() throws {
        let p = Variable(Tensor(shape: [2], repeating: 0), requiresGrad: true)
        p.value = try Tensor(shape: [2], scalars: [1.0, -2.0])
        let adam = AdamW(parameters: [("w", p)], learningRate: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.5)
        var w: [Double] = [1, -2], m: [Double] = [0, 0], v: [Double] = [0, 0]
        let grads: [[Double]] = [[0.5, -1.0], [0.25, 2.0]]
        for (t, g) in grads.enumerated() {
            p.grad = try Tensor(shape: [2], scalars: g.map(Float.init))
            adam.update()
            for i in 0..<2 {
                w[i] -= 0.1 * 0.5 * w[i]
                m[i] = 0.9 * m[i] + 0.1 * g[i]
                v[i] = 0.999 * v[i] + 0.001 * g[i] * g[i]
                let mh = m[i] / (1 - pow(0.9, Double(t + 1))), vh = v[i] / (1 - pow(0.999, Double(t + 1)))
                w[i] -= 0.1 * mh / (vh.squareRoot() + 1e-8)
            }
            p.value.withUnsafeBufferPointer { out in
                for i in 0..<2 { XCTAssertEqual(Double(out[i]), w[i], accuracy: 1e-6, "step \(t + 1) element \(i)") }
            }
        }
        XCTAssertEqual(adam.step, 2)
    }

    func testParameterWithoutGradientIsLeftAlone() throws {
        let p = Variable(Tensor(shape: [3], repeating: 1), requiresGrad: true)
        let adam = AdamW(parameters: [("w", p)], learningRate: 0.1)
        adam.update()
        XCTAssertEqual(p.value.scalars, [1, 1, 1])
    }

    func testStateRestoreContinuesIdentically() throws {
        func run(split: Bool) throws -> [Float] {
            let p = Variable(Tensor(shape: [4], repeating: 0.5), requiresGrad: true)
            var adam = AdamW(parameters: [("w", p)], learningRate: 0.05)
            for step in 0..<4 {
                if split && step == 2 {
                    let (tensors, count) = adam.state()
                    adam = AdamW(parameters: [("w", p)], learningRate: 0.05)
                    try adam.restore(tensors: tensors, step: count)
                }
                p.grad = Tensor(shape: [4], repeating: Float(step) - 1.5)
                adam.update()
            }
            return p.value.scalars
        }
        XCTAssertEqual(try run(split: true), try run(split: false))
        let p = Variable(Tensor(shape: [2], repeating: 0), requiresGrad: true)
        let adam = AdamW(parameters: [("w", p)], learningRate: 0.1)
        XCTAssertThrowsError(try adam.restore(tensors: ["exp_avg.w": Tensor(zeros: [3]), "exp_avg_sq.w": Tensor(zeros: [2])],
                                              step: 1))
        XCTAssertThrowsError(try adam.restore(tensors: [:], step: 1))
    }
}
