import XCTest
@testable import TensorCore

final class NormalizationTests: XCTestCase {
    /// Double GroupNorm of x [N, P, C] (channels last) with `groups` groups.
    func referenceGroupNorm(_ x: [Double], n: Int, c: Int, groups: Int, gamma: [Double], beta: [Double], eps: Double) -> [Double] {
        let p = x.count / (n * c), cg = c / groups
        var y = x
        for b in 0..<n {
            for g in 0..<groups {
                var vals: [Double] = []
                for px in 0..<p { for ch in g * cg..<(g + 1) * cg { vals.append(x[(b * p + px) * c + ch]) } }
                let mu = vals.reduce(0, +) / Double(vals.count)
                let v = vals.reduce(0) { $0 + ($1 - mu) * ($1 - mu) } / Double(vals.count)
                for px in 0..<p { for ch in g * cg..<(g + 1) * cg {
                    let i = (b * p + px) * c + ch
                    y[i] = (x[i] - mu) / (v + eps).squareRoot() * gamma[ch] + beta[ch]
                } }
            }
        }
        return y
    }

    func testGroupNormForwardAndBackward() throws {
        for (i, (shape, groups)) in [([2, 3, 5, 8], 4), ([1, 7, 1, 6], 3), ([2, 17, 33], 3), ([1, 1, 1, 4], 1)].enumerated() {
            let c = shape.last!, n = shape[0]
            let x = randomTensor(shape, seed: UInt64(i), scale: 2)
            let gamma = randomTensor([c], seed: 100 + UInt64(i)), beta = randomTensor([c], seed: 200 + UInt64(i))
            let r = try Normalization.groupNorm(x, groups: groups, gamma: gamma, beta: beta, eps: 1e-5)
            let ref = { (x: [Double], g: [Double], b: [Double]) in
                self.referenceGroupNorm(x, n: n, c: c, groups: groups, gamma: g, beta: b, eps: 1e-5)
            }
            assertClose(r.output, ref(doubles(x), doubles(gamma), doubles(beta)), atol: 1e-5, rtol: 1e-5, "groupNorm \(shape)")
            let w = randomTensor(shape, seed: 300)
            let grads = try Normalization.groupNormBackward(w, x, mean: r.mean, rstd: r.rstd, groups: groups, gamma: gamma)
            let wd = doubles(w)
            assertClose(grads.input, numericalGradient(doubles(x)) { dot(wd, ref($0, doubles(gamma), doubles(beta))) },
                        atol: 2e-4, rtol: 1e-3, "groupNorm dx \(shape)")
            assertClose(grads.gamma, numericalGradient(doubles(gamma)) { dot(wd, ref(doubles(x), $0, doubles(beta))) },
                        atol: 1e-4, rtol: 1e-4, "groupNorm dgamma \(shape)")
            assertClose(grads.beta, numericalGradient(doubles(beta)) { dot(wd, ref(doubles(x), doubles(gamma), $0)) },
                        atol: 1e-4, rtol: 1e-4, "groupNorm dbeta \(shape)")
        }
    }

    func testGroupNormWithFusedSiLU() throws {
        let shape = [2, 5, 3, 12], groups = 4
        let x = randomTensor(shape, seed: 70, scale: 2)
        let gamma = randomTensor([12], seed: 71), beta = randomTensor([12], seed: 72)
        let silu = { (z: Double) in z / (1 + Foundation.exp(-z)) }
        let ref = { (x: [Double], g: [Double], b: [Double]) in
            self.referenceGroupNorm(x, n: 2, c: 12, groups: groups, gamma: g, beta: b, eps: 1e-5).map(silu)
        }
        let r = try Normalization.groupNorm(x, groups: groups, gamma: gamma, beta: beta, activation: .silu)
        assertClose(r.output, ref(doubles(x), doubles(gamma), doubles(beta)), atol: 1e-5, rtol: 1e-5, "groupNorm+silu")
        let w = randomTensor(shape, seed: 73), wd = doubles(w)
        let grads = try Normalization.groupNormBackward(w, x, mean: r.mean, rstd: r.rstd, groups: groups, gamma: gamma,
                                                        beta: beta, activation: .silu)
        assertClose(grads.input, numericalGradient(doubles(x)) { dot(wd, ref($0, doubles(gamma), doubles(beta))) },
                    atol: 2e-4, rtol: 1e-3, "groupNorm+silu dx")
        assertClose(grads.gamma, numericalGradient(doubles(gamma)) { dot(wd, ref(doubles(x), $0, doubles(beta))) },
                    atol: 1e-4, rtol: 1e-4, "groupNorm+silu dgamma")
        assertClose(grads.beta, numericalGradient(doubles(beta)) { dot(wd, ref(doubles(x), doubles(gamma), $0)) },
                    atol: 1e-4, rtol: 1e-4, "groupNorm+silu dbeta")
    }

    func testGroupNormWithoutAffineAndBadShapes() throws {
        let x = randomTensor([2, 4, 4, 6], seed: 9)
        let r = try Normalization.groupNorm(x, groups: 2, gamma: nil, beta: nil)
        assertClose(r.output, referenceGroupNorm(doubles(x), n: 2, c: 6, groups: 2, gamma: Array(repeating: 1, count: 6),
                                                 beta: Array(repeating: 0, count: 6), eps: 1e-5), atol: 1e-5, "groupNorm plain")
        XCTAssertThrowsError(try Normalization.groupNorm(x, groups: 4, gamma: nil, beta: nil)) { e in
            XCTAssertTrue("\(e)".contains("[2, 4, 4, 6]"), "\(e)")
        }
        XCTAssertThrowsError(try Normalization.groupNorm(x, groups: 2, gamma: Tensor(zeros: [5]), beta: nil)) { e in
            XCTAssertTrue("\(e)".contains("[5]"), "\(e)")
        }
    }

    func testGroupNormThreadIndependent() throws {
        let x = randomTensor([2, 24, 24, 64], seed: 10), w = randomTensor([2, 24, 24, 64], seed: 11)
        let gamma = randomTensor([64], seed: 12), beta = randomTensor([64], seed: 13)
        try assertThreadIndependent("groupNorm", tol: 0) {
            let r = try Normalization.groupNorm(x, groups: 32, gamma: gamma, beta: beta)
            let g = try Normalization.groupNormBackward(w, x, mean: r.mean, rstd: r.rstd, groups: 32, gamma: gamma)
            return [r.output, g.input, g.gamma, g.beta]
        }
    }

    func referenceLayerNorm(_ x: [Double], d: Int, gamma: [Double], beta: [Double], eps: Double) -> [Double] {
        var y = x
        for r in 0..<x.count / d {
            let row = x[r * d..<(r + 1) * d]
            let mu = row.reduce(0, +) / Double(d)
            let v = row.reduce(0) { $0 + ($1 - mu) * ($1 - mu) } / Double(d)
            for j in 0..<d { y[r * d + j] = (x[r * d + j] - mu) / (v + eps).squareRoot() * gamma[j] + beta[j] }
        }
        return y
    }

    func testLayerNormForwardAndBackward() throws {
        for (i, shape) in [[3, 7], [2, 2, 17], [1, 33], [5, 1], [2, 40]].enumerated() {
            let d = shape.last!
            let x = randomTensor(shape, seed: UInt64(20 + i), scale: 3)
            let gamma = randomTensor([d], seed: 30), beta = randomTensor([d], seed: 31)
            let r = try Normalization.layerNorm(x, gamma: gamma, beta: beta, eps: 1e-5)
            XCTAssertEqual(r.mean.shape, Array(shape.dropLast()))
            let ref = { (x: [Double], g: [Double], b: [Double]) in self.referenceLayerNorm(x, d: d, gamma: g, beta: b, eps: 1e-5) }
            assertClose(r.output, ref(doubles(x), doubles(gamma), doubles(beta)), atol: 1e-5, rtol: 1e-5, "layerNorm \(shape)")
            let w = randomTensor(shape, seed: 32), wd = doubles(w)
            let g = try Normalization.layerNormBackward(w, x, mean: r.mean, rstd: r.rstd, gamma: gamma)
            assertClose(g.input, numericalGradient(doubles(x)) { dot(wd, ref($0, doubles(gamma), doubles(beta))) },
                        atol: 2e-4, rtol: 1e-3, "layerNorm dx \(shape)")
            assertClose(g.gamma, numericalGradient(doubles(gamma)) { dot(wd, ref(doubles(x), $0, doubles(beta))) },
                        atol: 1e-4, rtol: 1e-4, "layerNorm dgamma \(shape)")
            assertClose(g.beta, numericalGradient(doubles(beta)) { dot(wd, ref(doubles(x), doubles(gamma), $0)) },
                        atol: 1e-4, rtol: 1e-4, "layerNorm dbeta \(shape)")
        }
        let x = randomTensor([300, 77], seed: 40), w = randomTensor([300, 77], seed: 41), gamma = randomTensor([77], seed: 42)
        try assertThreadIndependent("layerNorm", tol: 0) {
            let r = try Normalization.layerNorm(x, gamma: gamma, beta: nil)
            let g = try Normalization.layerNormBackward(w, x, mean: r.mean, rstd: r.rstd, gamma: gamma)
            return [r.output, g.input, g.gamma, g.beta]
        }
        XCTAssertThrowsError(try Normalization.layerNorm(x, gamma: Tensor(zeros: [76]), beta: nil))
    }
}
