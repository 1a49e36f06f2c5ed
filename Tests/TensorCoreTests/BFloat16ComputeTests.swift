// BF16 compute (TensorCore's BFloat16Compute.swift over CBFloat16's `vdpbf16ps` kernels): products equal a Double
// reference on the BF16-rounded operands up to F32 accumulation, over the shapes the tiling has edges at (partial
// slivers, tiles of fewer than 12 rows, strides, padding, 1x1 kernels, k chunks of 256).
import XCTest
@testable import TensorCore

final class BFloat16ComputeTests: XCTestCase {
    override func setUpWithError() throws {
        guard BFloat16Compute.isAvailable else {
            throw XCTSkip("this CPU has no AVX512-BF16 (or a lower kernel level is active): the BF16 kernels cannot run")
        }
    }

    private func rounded(_ t: Tensor) -> [Double] { t.scalars.map { Double(BFloat16Compute.rounded($0)) } }

    /// Largest |actual - reference| over the largest |term sum| scale: F32 accumulation of exact products.
    private func assertMatches(_ actual: Tensor, _ reference: [Double], scale: [Double], _ what: String,
                               file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(actual.count, reference.count, what, file: file, line: line)
        var worst = 0.0
        for i in 0..<reference.count {
            worst = max(worst, abs(Double(actual.scalars[i]) - reference[i]) / max(scale[i], 1e-6))
        }
        XCTAssertLessThan(worst, 2e-6, "\(what): relative to Σ|terms|", file: file, line: line)
    }

    func testRoundingIsNearestEven() {
        XCTAssertEqual(BFloat16Compute.rounded(1), 1)
        XCTAssertEqual(BFloat16Compute.rounded(Float(bitPattern: 0x3F80_8000)), 1)              // tie to even
        XCTAssertEqual(BFloat16Compute.rounded(Float(bitPattern: 0x3F81_8000)).bitPattern, 0x3F82_0000)
        XCTAssertEqual(BFloat16Compute.rounded(Float(bitPattern: 0x3F80_8001)).bitPattern, 0x3F81_0000)
        XCTAssertEqual(BFloat16Compute.rounded(-2.5), -2.5)
    }

    func testLinearMatchesReferenceOnRoundedOperands() throws {
        // 70 outputs: two full slivers and one of 6; 37 rows: four tiles of 9-10 rows; 520 inputs: k chunks of
        // 256, 256 and 8.
        for (rows, k, n) in [(37, 520, 70), (1, 2, 1), (12, 64, 32), (100, 48, 33)] {
            let x = randomTensor([rows, k], seed: 1), w = randomTensor([n, k], seed: 2), b = randomTensor([n], seed: 3)
            let packed = try XCTUnwrap(BFloat16Weight.linear(w))
            let y = try bfloat16Linear(x, weight: packed, bias: b)
            XCTAssertEqual(y.shape, [rows, n])
            let xr = rounded(x), wr = rounded(w)
            var reference = [Double](repeating: 0, count: rows * n), scale = reference
            for r in 0..<rows {
                for j in 0..<n {
                    var s = Double(b.scalars[j]), a = abs(s)
                    for i in 0..<k { let t = xr[r * k + i] * wr[j * k + i]; s += t; a += abs(t) }
                    reference[r * n + j] = s
                    scale[r * n + j] = a
                }
            }
            assertMatches(y, reference, scale: scale, "linear \(rows)x\(k)x\(n)")
        }
    }

    func testConvolutionMatchesReferenceOnRoundedOperands() throws {
        // (N, H, W, Cin, Cout, kernel, stride, padding): output rows of 13 and 7 pixels (tiles of 7+6 and 7),
        // stride 2, no padding, 1x1 (a GEMM over pixels), Cout past one sliver.
        let cases = [(2, 9, 13, 6, 40, 3, 1, 1), (1, 11, 8, 4, 16, 3, 2, 1), (1, 6, 7, 10, 5, 3, 1, 0),
                     (2, 5, 6, 8, 70, 1, 1, 0), (1, 8, 8, 300, 33, 3, 1, 1)]
        for (n, h, w, cin, cout, kk, s, p) in cases {
            let x = randomTensor([n, h, w, cin], seed: 4), wt = randomTensor([kk, kk, cin, cout], seed: 5)
            let b = randomTensor([cout], seed: 6)
            let packed = try XCTUnwrap(BFloat16Weight.convolution(wt))
            let y = try bfloat16Conv2d(x, weight: packed, kernelHeight: kk, kernelWidth: kk, bias: b, stride: s, padding: p)
            let ho = (h + 2 * p - kk) / s + 1, wo = (w + 2 * p - kk) / s + 1
            XCTAssertEqual(y.shape, [n, ho, wo, cout])
            let xr = rounded(x), wr = rounded(wt)
            var reference = [Double](repeating: 0, count: y.count), scale = reference
            for b0 in 0..<n { for oy in 0..<ho { for ox in 0..<wo { for co in 0..<cout {
                var sum = Double(b.scalars[co]), a = abs(sum)
                for dy in 0..<kk { for dx in 0..<kk {
                    let iy = oy * s + dy - p, ix = ox * s + dx - p
                    guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
                    for ci in 0..<cin {
                        let t = xr[((b0 * h + iy) * w + ix) * cin + ci] * wr[((dy * kk + dx) * cin + ci) * cout + co]
                        sum += t; a += abs(t)
                    }
                } }
                let o = ((b0 * ho + oy) * wo + ox) * cout + co
                reference[o] = sum; scale[o] = a
            } } } }
            assertMatches(y, reference, scale: scale, "conv \(n)x\(h)x\(w)x\(cin) → \(cout), \(kk)x\(kk) s\(s) p\(p)")
        }
    }

    func testInputGradientsMatchReferenceOnRoundedOperands() throws {
        // Linear: dX = g · W, g [rows, out].
        let (rows, inFeatures, out) = (29, 70, 36)
        let g = randomTensor([rows, out], seed: 20), w = randomTensor([out, inFeatures], seed: 21)
        let dx = try bfloat16Linear(g, weight: XCTUnwrap(BFloat16Weight.linearInputGradient(w)), bias: nil)
        XCTAssertEqual(dx.shape, [rows, inFeatures])
        let gr = rounded(g), wr = rounded(w)
        var reference = [Double](repeating: 0, count: rows * inFeatures), scale = reference
        for r in 0..<rows { for i in 0..<inFeatures {
            for o in 0..<out { let t = gr[r * out + o] * wr[o * inFeatures + i]; reference[r * inFeatures + i] += t; scale[r * inFeatures + i] += abs(t) }
        } }
        assertMatches(dx, reference, scale: scale, "linear input gradient")

        // Convolution, stride 1: the adjoint of the forward sum, scattered: each output gradient g[n, oy, ox, co]
        // adds g · w[dy, dx, ci, co] to every input pixel (oy + dy - p, ox + dx - p) it was computed from.
        // (Cout 32, Cin 40: the packer's vector paths; 12 and 34: its scalar one.)
        for (n, h, wd, cin, cout, kk, p) in [(2, 7, 9, 5, 12, 3, 1), (1, 6, 5, 40, 34, 3, 0), (1, 4, 6, 3, 8, 1, 0),
                                             (1, 5, 6, 40, 32, 3, 1)] {
            let wt = randomTensor([kk, kk, cin, cout], seed: 22)
            let ho = h + 2 * p - kk + 1, wo = wd + 2 * p - kk + 1
            let go = randomTensor([n, ho, wo, cout], seed: 23)
            let packed = try XCTUnwrap(BFloat16Weight.convolutionInputGradient(wt))
            let dx = try bfloat16Conv2dInputGradient(go, weight: packed, kernelHeight: kk, kernelWidth: kk,
                                                     inputShape: [n, h, wd, cin], padding: p)
            let gr = rounded(go), wr = rounded(wt)
            var reference = [Double](repeating: 0, count: dx.count), scale = reference
            for index in 0..<go.count {
                let co = index % cout, pixel = index / cout
                let (b, oy, ox) = (pixel / (ho * wo), pixel / wo % ho, pixel % wo)
                for tap in 0..<(kk * kk) {
                    let y = oy + tap / kk - p, x = ox + tap % kk - p
                    guard y >= 0, y < h, x >= 0, x < wd else { continue }
                    for ci in 0..<cin {
                        let t = gr[index] * wr[(tap * cin + ci) * cout + co], o = ((b * h + y) * wd + x) * cin + ci
                        reference[o] += t; scale[o] += abs(t)
                    }
                }
            }
            assertMatches(dx, reference, scale: scale, "conv input gradient \(kk)x\(kk) p\(p), Cin \(cin), Cout \(cout)")
        }
        XCTAssertNil(BFloat16Weight.convolutionInputGradient(randomTensor([3, 3, 4, 3], seed: 24)))   // Cout odd
        XCTAssertNil(BFloat16Weight.linearInputGradient(randomTensor([5, 4], seed: 25)))
    }

    func testAttentionIsCloseToF32Attention() throws {
        // (N, Lq, Lk, heads, D): odd key count (CLIP's 77), query rows past one 48-row block, D 40 / 64 / 8.
        for (n, lq, lk, heads, d) in [(2, 100, 77, 3, 40), (1, 50, 64, 2, 64), (1, 13, 5, 1, 8)] {
            let q = randomTensor([n, lq, heads * d], seed: 40), k = randomTensor([n, lk, heads * d], seed: 41)
            let v = randomTensor([n, lk, heads * d], seed: 42)
            let y = try bfloat16Attention(q, k, v, heads: heads)
            let split = { (t: Tensor) in t.reshapedUnchecked([t.shape[0], t.shape[1], heads, d]) }
            let reference = try Attention.scaledDotProduct(q: split(q), k: split(k), v: split(v), layout: .blhd, scale: nil,
                                                           causal: false).output
            let worst = zip(y.scalars, reference.scalars).map { abs($0 - $1) }.max() ?? 0
            XCTAssertGreaterThan(worst, 0, "BF16 products ran")
            XCTAssertLessThan(worst, 0.015, "attention \(n)x\(lq)x\(lk), \(heads) heads of \(d)")
            let mean = zip(y.scalars, reference.scalars).map { abs($0 - $1) }.reduce(0, +) / Float(y.count)
            XCTAssertLessThan(mean, 2e-3, "attention \(n)x\(lq)x\(lk): mean difference")
        }
        XCTAssertThrowsError(try bfloat16Attention(randomTensor([1, 4, 6], seed: 1), randomTensor([1, 4, 6], seed: 2),
                                                   randomTensor([1, 4, 6], seed: 3), heads: 2))   // D = 3: odd
    }

    func testPackingKeepsTheRoundedWeightAndRefusesOddInputs() throws {
        let w = randomTensor([3, 3, 6, 45], seed: 7)
        let packed = try XCTUnwrap(BFloat16Weight.convolution(w))
        XCTAssertEqual(packed.unpacked().scalars, w.scalars.map(BFloat16Compute.rounded))
        XCTAssertEqual(packed.byteCount, 2 * 2 * 32 * 9 * 6)                  // two slivers of 32 columns
        XCTAssertNil(BFloat16Weight.convolution(randomTensor([3, 3, 3, 8], seed: 8)))   // RGB input: Cin odd
        XCTAssertNil(BFloat16Weight.linear(randomTensor([8, 5], seed: 9)))
    }

    func testMismatchedShapesAreErrors() throws {
        let packed = try XCTUnwrap(BFloat16Weight.linear(randomTensor([8, 6], seed: 10)))
        XCTAssertThrowsError(try bfloat16Linear(randomTensor([2, 4], seed: 11), weight: packed, bias: nil))
        XCTAssertThrowsError(try bfloat16Linear(randomTensor([2, 6], seed: 11), weight: packed, bias: randomTensor([7], seed: 1)))
        let conv = try XCTUnwrap(BFloat16Weight.convolution(randomTensor([3, 3, 4, 8], seed: 12)))
        XCTAssertThrowsError(try bfloat16Conv2d(randomTensor([1, 5, 5, 4], seed: 13), weight: conv, kernelHeight: 1,
                                                kernelWidth: 1, bias: nil, stride: 1, padding: 0))
    }
}
