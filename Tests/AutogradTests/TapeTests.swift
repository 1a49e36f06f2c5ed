import XCTest
import TestSupport
import TensorCore
@testable import Autograd

final class TapeTests: XCTestCase {
    func testNoGradScopeRecordsNothing() throws {
        let w = Variable(uniformTensor([3, 4], seed: 1), requiresGrad: true)
        let x = Variable(uniformTensor([2, 4], seed: 2), requiresGrad: true)
        let y = try withNoGrad { try linear(x, weight: w, bias: nil) }
        XCTAssertTrue(y.isLeaf)
        XCTAssertFalse(y.requiresGrad)
        let recorded = try linear(x, weight: w, bias: nil)
        XCTAssertFalse(recorded.isLeaf)
        XCTAssertEqual(recorded.operation, "linear")
    }

    func testInputsWithoutGradientRecordNothing() throws {
        let w = Variable(uniformTensor([3, 4], seed: 1))
        let x = Variable(uniformTensor([2, 4], seed: 2))
        let y = try linear(x, weight: w, bias: nil)
        XCTAssertTrue(y.isLeaf)
        XCTAssertFalse(y.requiresGrad)
    }

    func testFrozenLinearComputesOnlyInputGradient() throws {
        let w = Variable(uniformTensor([3, 4], seed: 1))                  // frozen
        let b = Variable(uniformTensor([3], seed: 3))                     // frozen
        let x = Variable(uniformTensor([2, 4], seed: 2), requiresGrad: true)
        let trace = BackwardTrace()
        try GradMode.$trace.withValue(trace) { try sum(linear(x, weight: w, bias: b)).backward() }
        XCTAssertEqual(trace.events, ["linear.dInput"])
        XCTAssertNil(w.grad)
        XCTAssertNil(b.grad)
        XCTAssertEqual(x.grad?.shape, [2, 4])
    }

    func testFrozenLayerBeforeTrainableOneRunsNoBackwardAtAll() throws {
        let frozen = Variable(uniformTensor([4, 4], seed: 1))
        let trainable = Variable(uniformTensor([2, 4], seed: 2), requiresGrad: true)
        let x = Variable(uniformTensor([3, 4], seed: 3))
        let trace = BackwardTrace()
        try GradMode.$trace.withValue(trace) {
            let h = try linear(x, weight: frozen, bias: nil)
            try sum(linear(h, weight: trainable, bias: nil)).backward()
        }
        XCTAssertEqual(trace.events, ["linear.dWeight"])
        XCTAssertNil(frozen.grad)
        XCTAssertNotNil(trainable.grad)
    }

    func testBackwardAccumulatesAcrossCallsAndOverSharedUses() throws {
        let x = Variable(try Tensor(shape: [2], scalars: [1, 2]), requiresGrad: true)
        try sum(x * x).backward()                       // d/dx Σx² = 2x
        XCTAssertEqual(x.grad?.scalars, [2, 4])
        try sum(x).backward()
        XCTAssertEqual(x.grad?.scalars, [3, 5])
        x.zeroGrad()
        XCTAssertNil(x.grad)
    }

    func testBackwardNeedsScalarOrSeed() throws {
        let x = Variable(Tensor(zeros: [2, 2]), requiresGrad: true)
        let y = scale(x, by: 3)
        XCTAssertThrowsError(try y.backward()) { XCTAssertEqual($0 as? AutogradError, .nonScalarOutput(shape: [2, 2])) }
        XCTAssertThrowsError(try y.backward(Tensor(zeros: [4])))
        try y.backward(Tensor(shape: [2, 2], repeating: 1))
        XCTAssertEqual(x.grad?.scalars, [3, 3, 3, 3])
    }

    /// The graph holds operations, not variables: an intermediate value lives on only if a VJP reads it.
    func testGraphKeepsOnlyTensorsThatVJPsRead() throws {
        let frozen = Variable(uniformTensor([3, 4], seed: 1))
        let x = Variable(uniformTensor([2, 4], seed: 2), requiresGrad: true)
        weak var hStorage: TensorStorage?
        weak var kStorage: TensorStorage?
        let loss: Variable = try {
            let h = scale(x, by: 2)                              // read by nobody: linear's dX needs only W
            let k = scale(x, by: 3)                              // read by silu's VJP
            hStorage = h.value.storage
            kStorage = k.value.storage
            return try sum(add(linear(h, weight: frozen, bias: nil), sum(silu(k))))
        }()
        XCTAssertNil(hStorage, "the frozen linear's input must not be kept for a dW that is never computed")
        XCTAssertNotNil(kStorage)
        try loss.backward()
        XCTAssertEqual(x.grad?.shape, [2, 4])
    }

    func testDeepChainDoesNotRecurse() throws {
        let x = Variable(Tensor(shape: [1], repeating: 1), requiresGrad: true)
        var y = x
        for _ in 0..<20_000 { y = scale(y, by: 1) }
        try sum(y).backward()
        XCTAssertEqual(x.grad?.scalars, [1])
    }

    /// Two blocks of Linear + SiLU; parameters of the second block are used inside the checkpoint.
    private func gradients(checkpointed: Bool) throws -> [Tensor?] {
        let w1 = Variable(uniformTensor([5, 4], seed: 11), requiresGrad: true)
        let w2 = Variable(uniformTensor([3, 5], seed: 12), requiresGrad: true)
        let b2 = Variable(uniformTensor([3], seed: 13), requiresGrad: true)
        let x = Variable(uniformTensor([2, 4], seed: 14), requiresGrad: true)
        let h = silu(try linear(x, weight: w1, bias: nil))
        let block = { (v: Variable) throws -> Variable in silu(try linear(v, weight: w2, bias: b2)) }
        let out = checkpointed ? try checkpoint(h, block) : try block(h)
        if checkpointed { XCTAssertEqual(out.operation, "checkpoint") }
        try sum(out * out).backward()
        return [w1.grad, w2.grad, b2.grad, x.grad]
    }

    func testCheckpointGivesTheSameGradients() throws {
        let plain = try gradients(checkpointed: false)
        let recomputed = try gradients(checkpointed: true)
        for (p, r) in zip(plain, recomputed) {
            let (p, r) = (try XCTUnwrap(p), try XCTUnwrap(r))
            XCTAssertEqual(p.scalars, r.scalars)
        }
    }

    func testCheckpointRecordsWhenOnlyParametersInsideNeedGradients() throws {
        let w = Variable(uniformTensor([3, 4], seed: 1), requiresGrad: true)
        let x = Variable(uniformTensor([2, 4], seed: 2))
        let out = try checkpoint(x) { try linear($0, weight: w, bias: nil) }
        XCTAssertEqual(out.operation, "checkpoint")
        try sum(out).backward()
        let expected = Variable(w.value, requiresGrad: true)
        try sum(linear(x, weight: expected, bias: nil)).backward()
        XCTAssertEqual(w.grad?.scalars, expected.grad?.scalars)
        XCTAssertNil(x.grad)

        let frozen = Variable(uniformTensor([3, 4], seed: 1))
        XCTAssertTrue(try checkpoint(x) { try linear($0, weight: frozen, bias: nil) }.isLeaf)
    }

    func testSmallMLPTrains() throws {
        // Regress y = sin(x0) + x1² with a 2-16-1 SiLU network and plain SGD.
        let xs = uniformTensor([64, 2], seed: 5)
        let ys = Tensor(shape: [64, 1]) { b in
            for i in 0..<64 { b[i] = sin(xs[flat: 2 * i]) + xs[flat: 2 * i + 1] * xs[flat: 2 * i + 1] }
        }
        let w1 = Variable(uniformTensor([16, 2], seed: 6), requiresGrad: true)
        let b1 = Variable(Tensor(zeros: [16]), requiresGrad: true)
        let w2 = Variable(Tensor(shape: [1, 16]) { b in for i in b.indices { b[i] = 0.1 * uniformTensor([16], seed: 7)[flat: i] } },
                          requiresGrad: true)
        let b2 = Variable(Tensor(zeros: [1]), requiresGrad: true)
        let params = [w1, b1, w2, b2]
        func step() throws -> Float {
            let h = silu(try linear(Variable(xs), weight: w1, bias: b1))
            let loss = try mseLoss(try linear(h, weight: w2, bias: b2), Variable(ys))
            try loss.backward()
            for p in params {
                p.value = try Elementwise.axpy(-0.2, XCTUnwrap(p.grad), p.value)
                p.zeroGrad()
            }
            return loss.value.item
        }
        let first = try step()
        var last = first
        for _ in 0..<300 { last = try step() }
        XCTAssertLessThan(last, first * 0.2, "loss \(first) → \(last)")
    }
}

final class CheckpointAndFrozenConvTests: XCTestCase {
    func testCheckpointWithTwoOutputs() throws {
        func run(_ checkpointed: Bool) throws -> (Tensor?, Tensor?) {
            let w = Variable(uniformTensor([3, 3], seed: 1), requiresGrad: true)
            let x = Variable(uniformTensor([2, 3], seed: 2), requiresGrad: true)
            let body = { (v: [Variable]) throws -> [Variable] in
                let h = silu(try linear(v[0], weight: w, bias: nil))
                return [h, try mul(h, v[0])]
            }
            let outs = checkpointed ? try checkpoint([x], body) : try body([x])
            try sum(try add(outs[0], scale(outs[1], by: 3))).backward()
            return (w.grad, x.grad)
        }
        // Each output's recompute adds its share separately, so only the summation order differs.
        let (a, b) = (try run(false), try run(true))
        XCTAssertLessThan(maxAbsDifference(try XCTUnwrap(a.0), try XCTUnwrap(b.0)), 1e-5)
        XCTAssertLessThan(maxAbsDifference(try XCTUnwrap(a.1), try XCTUnwrap(b.1)), 1e-5)
    }

    func testFrozenConvComputesOnlyInputGradient() throws {
        let w = Variable(uniformTensor([3, 3, 2, 4], seed: 3)), b = Variable(uniformTensor([4], seed: 4))
        let x = Variable(uniformTensor([1, 4, 4, 2], seed: 5), requiresGrad: true)
        let trace = BackwardTrace()
        try GradMode.$trace.withValue(trace) { try sum(conv2d(x, weight: w, bias: b, padding: 1)).backward() }
        XCTAssertEqual(trace.events, ["conv2d.dInput"])
        XCTAssertNil(w.grad)
        XCTAssertNil(b.grad)
        XCTAssertEqual(x.grad?.shape, [1, 4, 4, 2])
    }
}
