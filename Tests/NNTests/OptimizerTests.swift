// AdamW against torch.optim.AdamW's update rule computed by hand in Double, per-group learning-rate scales, missing gradients, state save/restore, and gradient clipping.
import Autograd
import NN
import TensorCore
import XCTest

final class OptimizerTests: XCTestCase {
    /// Two steps, λ = 0.5: p ← p − lr·λ·p; m ← β1 m + (1 − β1) g; v ← β2 v + (1 − β2) g²;
    /// p ← p − lr·m̂ / (√v̂ + ε).
    func testTwoStepsMatchTheHandComputedRule() throws {
        do {
            let p = Variable(Tensor(shape: [2], repeating: 0), requiresGrad: true)
            p.value = try Tensor(shape: [2], scalars: [1.0, -2.0])
            let adam = AdamW(parameters: [("w", p)], learningRate: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8,
                             weightDecay: 0.5)
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
                    for i in 0..<2 {
                        XCTAssertEqual(Double(out[i]), w[i], accuracy: 1e-6, "step \(t + 1) element \(i)")
                    }
                }
            }
            XCTAssertEqual(adam.step, 2)
        }
    }

    /// Two steps at λ = 1e-2 in torch's order: p ← p(1 − lr·λ); m, v as above;
    /// p ← p − lr/(1 − β1ᵗ) · m / (√v/√(1 − β2ᵗ) + ε).
    func testAdamWMatchesTheReferenceUpdateRule() throws {
        let p = Variable(try Tensor(shape: [3], scalars: [0.5, -1.0, 2.0]), requiresGrad: true)
        let grads: [[Float]] = [[0.1, -0.2, 0.3], [-0.05, 0.4, 0.0]]
        let lr: Float = 1e-2, wd: Float = 1e-2
        let optimizer = AdamW(groups: [ParameterGroup(parameters: [("w", p)])], settings: AdamWSettings(weightDecay: wd))
        var ref: [Double] = [0.5, -1.0, 2.0], m = [Double](repeating: 0, count: 3), v = m
        for (t, g) in grads.enumerated() {
            p.grad = try Tensor(shape: [3], scalars: g)
            optimizer.update(learningRate: lr)
            let step = Double(t + 1)
            for j in 0..<3 {
                ref[j] *= 1 - Double(lr) * Double(wd)
                m[j] = 0.9 * m[j] + 0.1 * Double(g[j])
                v[j] = 0.999 * v[j] + 0.001 * Double(g[j]) * Double(g[j])
                let denom = v[j].squareRoot() / (1 - pow(0.999, step)).squareRoot() + 1e-8
                ref[j] -= Double(lr) / (1 - pow(0.9, step)) * m[j] / denom
            }
        }
        let got = p.value.withUnsafeBufferPointer(Array.init)
        for j in 0..<3 { XCTAssertEqual(Double(got[j]), ref[j], accuracy: 1e-6, "element \(j)") }
        // First step of Adam moves each coordinate by ≈ lr·sign(g): the sign of the move is checked too.
        XCTAssertLessThan(got[0], 0.5)
        XCTAssertEqual(optimizer.step, 2)
    }

    /// One Adam step moves each weight by lr·sign(g) (bias-corrected m/√v = g/|g|), minus decoupled decay.
    func testFirstStepMovesByTheLearningRate() throws {
        let p = Variable(try Tensor(shape: [3], scalars: [1, -2, 0.5]), requiresGrad: true)
        p.grad = try Tensor(shape: [3], scalars: [0.3, -4, 0.01])
        let adam = AdamW(parameters: [("w", p)], learningRate: 0.1, eps: 0, weightDecay: 0.5)
        adam.update()
        let expected: [Float] = [1 - 0.1 * (1 + 0.5 * 1), -2 - 0.1 * (-1 + 0.5 * -2), 0.5 - 0.1 * (1 + 0.5 * 0.5)]
        for (a, e) in zip(p.value.scalars, expected) { XCTAssertEqual(a, e, accuracy: 1e-6) }
    }

    /// A group at scale ½ moves as a group at half the learning rate.
    func testGroupLearningRateScale() throws {
        let a = Variable(Tensor(shape: [2], repeating: 1), requiresGrad: true)
        let b = Variable(Tensor(shape: [2], repeating: 1), requiresGrad: true)
        let reference = Variable(Tensor(shape: [2], repeating: 1), requiresGrad: true)
        let adam = AdamW(groups: [ParameterGroup(parameters: [("a", a)]),
                                  ParameterGroup(parameters: [("b", b)], learningRateScale: 0.5)])
        let half = AdamW(groups: [ParameterGroup(parameters: [("r", reference)])])
        for p in [a, b, reference] { p.grad = try Tensor(shape: [2], scalars: [0.5, -0.25]) }
        adam.update(learningRate: 0.2)
        half.update(learningRate: 0.1)
        XCTAssertEqual(b.value.scalars, reference.value.scalars)
        XCTAssertNotEqual(a.value.scalars, reference.value.scalars)
    }

    /// A parameter without gradient (the loss does not reach it) is left as it is, as torch's AdamW skips
    /// `p.grad is None`: no weight decay, no moments; a zero gradient still decays.
    func testParameterWithoutGradient() throws {
        let p = Variable(Tensor(shape: [3], repeating: 1), requiresGrad: true)
        let adam = AdamW(parameters: [("w", p)], learningRate: 0.1, weightDecay: 0.5)
        adam.update()
        XCTAssertEqual(p.value.scalars, [Float](repeating: 1, count: 3))
        p.grad = Tensor(zeros: [3])
        adam.update()
        XCTAssertEqual(p.value.scalars, [Float](repeating: 1 - 0.1 * 0.5, count: 3))
    }

    func testStateRestoreContinuesIdentically() throws {
        for keys in [MomentKeys.torch, MomentKeys(first: "adamw.m.", second: "adamw.v.")] {
            func run(split: Bool) throws -> [Float] {
                let p = Variable(Tensor(shape: [4], repeating: 0.5), requiresGrad: true)
                var adam = AdamW(parameters: [("w", p)], learningRate: 0.05)
                for step in 0..<4 {
                    if split && step == 2 {
                        let (tensors, count) = adam.state(keys: keys)
                        adam = AdamW(parameters: [("w", p)], learningRate: 0.05)
                        try adam.restore(tensors: tensors, step: count, keys: keys)
                    }
                    p.grad = Tensor(shape: [4], repeating: Float(step) - 1.5)
                    adam.update()
                }
                return p.value.scalars
            }
            XCTAssertEqual(try run(split: true), try run(split: false))
        }
        let p = Variable(Tensor(shape: [2], repeating: 0), requiresGrad: true)
        let adam = AdamW(parameters: [("w", p)], learningRate: 0.1)
        XCTAssertThrowsError(try adam.restore(tensors: ["exp_avg.w": Tensor(zeros: [3]), "exp_avg_sq.w": Tensor(zeros: [2])],
                                              step: 1))
        XCTAssertThrowsError(try adam.restore(tensors: [:], step: 1)) { error in
            XCTAssertEqual(error as? OptimizerError, .stateMismatch(key: "exp_avg.w", reason: "missing"))
        }
        XCTAssertEqual(adam.step, 0)
    }

    func testGradientClippingScalesToMaxNorm() throws {
        do {
            let a = Variable(Tensor(zeros: [2]), requiresGrad: true), b = Variable(Tensor(zeros: [1]), requiresGrad: true)
            a.grad = try Tensor(shape: [2], scalars: [3, 0])
            b.grad = try Tensor(shape: [1], scalars: [4])
            let norm = clipGradientNorm([a, b], maxNorm: 1)
            XCTAssertEqual(norm, 5, accuracy: 1e-6)
            XCTAssertEqual(a.grad!.withUnsafeBufferPointer { $0[0] }, 0.6, accuracy: 1e-6)
            XCTAssertEqual(b.grad!.withUnsafeBufferPointer { $0[0] }, 0.8, accuracy: 1e-6)
        }
    }

    /// At a norm exactly at the bound torch's rule still scales by 1/(1 + 1e-6); a bound of 0 zeroes the
    /// gradients.
    func testClippingAtTheBound() throws {
        let a = Variable(Tensor(zeros: [2]), requiresGrad: true)
        a.grad = try Tensor(shape: [2], scalars: [0, 1])
        clipGradientNorm([a], maxNorm: 1)
        XCTAssertLessThan(a.grad!.scalars[1], 1)
        XCTAssertGreaterThan(a.grad!.scalars[1], 0.99999)
        XCTAssertEqual(clipGradientNorm([a, Variable(Tensor(zeros: [1]), requiresGrad: true)], maxNorm: 0), 1, accuracy: 1e-5)
        XCTAssertEqual(a.grad!.scalars, [0, 0])
    }
}
