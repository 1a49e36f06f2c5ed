// Every instruction-set level this CPU runs computes what the best one computes: bitwise where both have
// FMA (the AVX2 and portable microkernels sum each element over k in the AVX-512 order), and within
// rounding on x86-64's SSE2 level, whose microkernels multiply and add separately. Element-wise kernels
// use no fused operation and agree bitwise on every level.
import XCTest
@testable import TensorCore

final class KernelLevelTests: XCTestCase {
    /// One result per level, computed with that level's kernels.
    private func perLevel(_ body: () throws -> [Tensor]) rethrows -> [(name: String, outputs: [Tensor])] {
        try Kernels.available.map { set in (set.name, try Kernels.$override.withValue(set) { try body() }) }
    }

    private func assertLevelsAgree(_ what: String, fused: Bool, _ body: () throws -> [Tensor],
                                   file: StaticString = #filePath, line: UInt = #line) rethrows {
        let results = try perLevel(body)
        let reference = results[0]
        for other in results.dropFirst() {
            for (i, (a, b)) in zip(reference.outputs, other.outputs).enumerated() {
                XCTAssertEqual(a.shape, b.shape, "\(what) output \(i)", file: file, line: line)
                if !fused || other.name != "sse2" {
                    let differing = zip(a.scalars, b.scalars).filter { $0.bitPattern != $1.bitPattern }.count
                    XCTAssertEqual(differing, 0, "\(what) output \(i): \(other.name) differs from \(reference.name) "
                                   + "in \(differing) of \(a.count) values", file: file, line: line)
                } else {
                    let scale = a.scalars.map { abs(Double($0)) }.max() ?? 0
                    assertClose(b, doubles(a), atol: 1e-5 * max(scale, 1), rtol: 1e-5,
                                "\(what) output \(i) on \(other.name)", file: file, line: line)
                }
            }
        }
    }

    func testChosenLevelIsAvailableAndNamed() {
        XCTAssertFalse(Kernels.available.isEmpty)
        XCTAssertTrue(Kernels.available.contains { $0.name == Kernels.active.name })
        XCTAssertTrue(Kernels.compiled.contains(Kernels.active.name))
        XCTAssertEqual(Kernels.set(named: Kernels.available.last!.name.uppercased())?.name, Kernels.available.last!.name)
        XCTAssertNil(Kernels.set(named: "mmx"))
        // The baseline level is always there, last.
        XCTAssertTrue(["sse2", "neon", "portable"].contains(Kernels.available.last!.name))
    }

    func testUnknownOrUnsupportedRequestFallsBackToBest() {
        XCTAssertEqual(Kernels.choose(requested: "mmx").set.name, Kernels.available[0].name)
        XCTAssertEqual(Kernels.choose(requested: nil).set.name, Kernels.available[0].name)
        XCTAssertEqual(Kernels.choose(requested: Kernels.available.last!.name).set.name, Kernels.available.last!.name)
    }

    func testGEMMEveryTileAndEdge() {
        // (m, n, k): 12x32 tiles with edges, 8x48 (n = 40), 6x64 (few rows, wide), 24x16 (n ≤ 16), 8x32
        // (m ≤ 16), transposed operands.
        for (m, n, k) in [(37, 45, 70), (50, 40, 64), (20, 1100, 33), (7, 5, 3), (130, 96, 400), (50, 16, 70),
                          (16, 100, 70), (15, 9, 40)] {
            for (ta, tb) in [(false, false), (true, false), (false, true)] {
                assertLevelsAgree("sgemm \(m)x\(n)x\(k) tA \(ta) tB \(tb)", fused: true) {
                    let a = randomTensor(ta ? [k, m] : [m, k], seed: 1), b = randomTensor(tb ? [n, k] : [k, n], seed: 2)
                    let c = randomTensor([m, n], seed: 3)
                    var out = c
                    out.withUnsafeMutableBufferPointer { pc in
                        sgemm(transA: ta, transB: tb, m: m, n: n, k: k, alpha: 0.5, a: a.storage.pointer, lda: ta ? m : k,
                              b: b.storage.pointer, ldb: tb ? k : n, beta: 1, c: pc.baseAddress!, ldc: n)
                    }
                    return [out]
                }
            }
        }
    }

    func testConvolutionForwardAndBackward() throws {
        for (stride, padding, size) in [(1, 1, 3), (2, 1, 3), (1, 0, 1)] {
            try assertLevelsAgree("conv \(size)x\(size) stride \(stride)", fused: true) {
                var outputs: [Tensor] = []
                for cout in [40, 16] {   // 16 output channels: the 24x16 tile
                    let x = randomTensor([2, 9, 11, 24], seed: 4), w = randomTensor([size, size, 24, cout], seed: 5, scale: 0.2)
                    let bias = randomTensor([cout], seed: 6)
                    let y = try conv2d(x, weight: w, bias: bias, stride: stride, padding: padding)
                    let dy = randomTensor(y.shape, seed: 7)
                    let dx = try conv2dBackwardInput(dy, weight: w, inputShape: x.shape, stride: stride, padding: padding)
                    let dw = try conv2dBackwardWeight(dy, input: x, kernelHeight: size, kernelWidth: size, stride: stride,
                                                      padding: padding)
                    outputs += [y, dx, dw]
                }
                return outputs
            }
        }
    }

    func testAttentionForwardAndBackward() throws {
        for (lq, lk, d, causal) in [(70, 70, 40, false), (33, 77, 64, false), (50, 50, 24, true)] {
            try assertLevelsAgree("attention \(lq)x\(lk) d \(d)", fused: true) {
                let q = randomTensor([2, 3, lq, d], seed: 8), k = randomTensor([2, 3, lk, d], seed: 9)
                let v = randomTensor([2, 3, lk, d], seed: 10)
                let r = try Attention.scaledDotProduct(q: q, k: k, v: v, causal: causal)
                let g = try Attention.scaledDotProductBackward(dOut: randomTensor(r.output.shape, seed: 11), q: q, k: k,
                                                               v: v, output: r.output, logSumExp: r.logSumExp, causal: causal)
                return [r.output, r.logSumExp, g.q, g.k, g.v]
            }
        }
    }

    func testElementwiseNormalizationAndSoftmaxAreBitwiseEverywhere() throws {
        try assertLevelsAgree("element-wise", fused: false) {
            let x = randomTensor([3, 8, 8, 64], seed: 12), dy = randomTensor([3, 8, 8, 64], seed: 13)
            let gamma = randomTensor([64], seed: 14), beta = randomTensor([64], seed: 15)
            let gn = try Normalization.groupNorm(x, groups: 8, gamma: gamma, beta: beta, activation: .silu)
            let gnb = try Normalization.groupNormBackward(dy, x, mean: gn.mean, rstd: gn.rstd, groups: 8, gamma: gamma,
                                                          beta: beta, activation: .silu)
            let ln = try Normalization.layerNorm(x, gamma: gamma, beta: beta)
            let sm = try Softmax.softmax(x)
            return [gn.output, gnb.input, gnb.gamma, ln.output, sm, Activation.gelu(x), Activation.silu(x),
                    try Activation.geluBackward(dy, x), try Elementwise.add(x, gamma), Elementwise.scale(x, by: 0.3)]
        }
    }
}
