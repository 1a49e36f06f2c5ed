import XCTest
@testable import TensorCore

/// Naive Double convolution on NHWC input and `[kh, kw, Cin, Cout]` weight.
func referenceConv(_ x: [Double], _ w: [Double], _ bias: [Double]?, _ g: Conv2DShape) -> [Double] {
    let (ho, wo) = (g.outHeight, g.outWidth)
    var out = [Double](repeating: 0, count: g.batch * ho * wo * g.outChannels)
    for n in 0..<g.batch { for oy in 0..<ho { for ox in 0..<wo { for co in 0..<g.outChannels {
        var s = bias?[co] ?? 0
        for dy in 0..<g.kernelHeight { for dx in 0..<g.kernelWidth {
            let y = oy * g.stride + dy - g.padding, xx = ox * g.stride + dx - g.padding
            guard y >= 0, y < g.height, xx >= 0, xx < g.width else { continue }
            for ci in 0..<g.inChannels {
                s += x[((n * g.height + y) * g.width + xx) * g.inChannels + ci]
                    * w[((dy * g.kernelWidth + dx) * g.inChannels + ci) * g.outChannels + co]
            }
        } }
        out[((n * ho + oy) * wo + ox) * g.outChannels + co] = s
    } } } }
    return out
}

/// Naive Double backward of `referenceConv`: (dX, dW) for output gradient `dy`.
func referenceConvBackward(_ x: [Double], _ w: [Double], _ dy: [Double], _ g: Conv2DShape) -> ([Double], [Double]) {
    var dx = [Double](repeating: 0, count: x.count), dw = [Double](repeating: 0, count: w.count)
    let (ho, wo) = (g.outHeight, g.outWidth)
    for n in 0..<g.batch { for oy in 0..<ho { for ox in 0..<wo { for co in 0..<g.outChannels {
        let gy = dy[((n * ho + oy) * wo + ox) * g.outChannels + co]
        for ky in 0..<g.kernelHeight { for kx in 0..<g.kernelWidth {
            let y = oy * g.stride + ky - g.padding, xx = ox * g.stride + kx - g.padding
            guard y >= 0, y < g.height, xx >= 0, xx < g.width else { continue }
            for ci in 0..<g.inChannels {
                let xi = ((n * g.height + y) * g.width + xx) * g.inChannels + ci
                let wi = ((ky * g.kernelWidth + kx) * g.inChannels + ci) * g.outChannels + co
                dx[xi] += gy * w[wi]
                dw[wi] += gy * x[xi]
            }
        } }
    } } } }
    return (dx, dw)
}

final class Conv2DTests: XCTestCase {
    struct Case { var n, h, w, cin, cout, kh, kw, stride, pad: Int }

    func shape(_ c: Case) throws -> Conv2DShape {
        try Conv2DShape(input: [c.n, c.h, c.w, c.cin], weight: [c.kh, c.kw, c.cin, c.cout], stride: c.stride,
                        padding: c.pad, op: "test")
    }

    /// Each value within `tol` (relative, at least absolute) plus `scaleTol` times the largest expected magnitude:
    /// Winograd's transforms (stride-1 3×3 convolutions) round at the scale of the tile's larger intermediate
    /// sums, so an output near zero among large ones carries an error of up to ~1e-7 (F(2×2, 3×3)) or ~4e-6
    /// (F(4×4, 3×3)) of the outputs' scale.
    func assertClose(_ got: Tensor, _ want: [Double], tol: Double, scaleTol: Double = 1e-5, _ what: String,
                     line: UInt = #line) {
        XCTAssertEqual(got.count, want.count, what, line: line)
        let scale = want.map(abs).max() ?? 0
        var bad = 0
        for i in 0..<min(got.count, want.count)
        where !(abs(Double(got[flat: i]) - want[i]) <= tol * max(1, abs(want[i])) + scaleTol * scale) {
            if bad < 3 { XCTFail("\(what): [\(i)] = \(got[flat: i]), expected \(want[i])", line: line) }
            bad += 1
        }
    }

    func testForwardMatchesNaive() throws {
        let cases = [
            Case(n: 2, h: 5, w: 7, cin: 3, cout: 33, kh: 1, kw: 1, stride: 1, pad: 0),
            Case(n: 1, h: 7, w: 5, cin: 17, cout: 8, kh: 3, kw: 3, stride: 1, pad: 1),
            Case(n: 2, h: 9, w: 8, cin: 5, cout: 40, kh: 3, kw: 3, stride: 2, pad: 1),
            Case(n: 1, h: 6, w: 7, cin: 4, cout: 7, kh: 3, kw: 3, stride: 2, pad: 0),
            Case(n: 1, h: 17, w: 33, cin: 7, cout: 65, kh: 3, kw: 3, stride: 1, pad: 0),
            Case(n: 2, h: 4, w: 6, cin: 3, cout: 5, kh: 2, kw: 3, stride: 1, pad: 2),
            Case(n: 1, h: 6, w: 5, cin: 400, cout: 20, kh: 3, kw: 3, stride: 1, pad: 1),
            Case(n: 1, h: 8, w: 8, cin: 6, cout: 9, kh: 1, kw: 1, stride: 2, pad: 0),
        ]
        var rng = TestRandom(seed: 11)
        for (i, c) in cases.enumerated() {
            let g = try shape(c)
            let x = rng.tensor(g.inputShape), w = rng.tensor(g.weightShape), b = rng.tensor([c.cout])
            let withBias = i % 2 == 0
            let y = try conv2d(x, weight: w, bias: withBias ? b : nil, stride: c.stride, padding: c.pad)
            XCTAssertEqual(y.shape, g.outputShape)
            let want = referenceConv(x.scalars.map(Double.init), w.scalars.map(Double.init),
                                     withBias ? b.scalars.map(Double.init) : nil, g)
            assertClose(y, want, tol: 2e-5, "forward \(c)")
        }
    }

    /// Central differences in Double of `L = sum(conv(x, w, b) * r)` against the Float backward kernels.
    func testBackwardMatchesFiniteDifferences() throws {
        let cases = [
            Case(n: 2, h: 5, w: 4, cin: 3, cout: 5, kh: 3, kw: 3, stride: 1, pad: 1),
            Case(n: 1, h: 7, w: 6, cin: 2, cout: 3, kh: 3, kw: 3, stride: 2, pad: 1),
            Case(n: 1, h: 6, w: 5, cin: 3, cout: 4, kh: 3, kw: 3, stride: 2, pad: 0),
            Case(n: 2, h: 3, w: 4, cin: 4, cout: 3, kh: 1, kw: 1, stride: 1, pad: 0),
            Case(n: 1, h: 4, w: 5, cin: 2, cout: 3, kh: 2, kw: 3, stride: 1, pad: 2),
            Case(n: 1, h: 7, w: 8, cin: 2, cout: 3, kh: 1, kw: 1, stride: 2, pad: 0),   // phases without taps
            Case(n: 1, h: 8, w: 7, cin: 2, cout: 2, kh: 3, kw: 2, stride: 3, pad: 1),
        ]
        var rng = TestRandom(seed: 12)
        for c in cases {
            let g = try shape(c)
            let x = rng.tensor(g.inputShape), w = rng.tensor(g.weightShape), b = rng.tensor([c.cout])
            let r = rng.tensor(g.outputShape)
            let xd = x.scalars.map(Double.init), wd = w.scalars.map(Double.init), bd = b.scalars.map(Double.init)
            let rd = r.scalars.map(Double.init)
            func loss(_ x: [Double], _ w: [Double], _ b: [Double]) -> Double {
                zip(referenceConv(x, w, b, g), rd).reduce(0) { $0 + $1.0 * $1.1 }
            }
            let h = 1e-3
            func numeric(_ v: [Double], _ f: ([Double]) -> Double) -> [Double] {
                (0..<v.count).map { i in
                    var p = v, m = v
                    p[i] += h; m[i] -= h
                    return (f(p) - f(m)) / (2 * h)
                }
            }
            let dx = try conv2dBackwardInput(r, weight: w, inputShape: g.inputShape, stride: c.stride, padding: c.pad)
            let dw = try conv2dBackwardWeight(r, input: x, kernelHeight: c.kh, kernelWidth: c.kw, stride: c.stride,
                                              padding: c.pad)
            let db = try conv2dBackwardBias(r)
            assertClose(dx, numeric(xd) { loss($0, wd, bd) }, tol: 1e-5, "dX \(c)")
            assertClose(dw, numeric(wd) { loss(xd, $0, bd) }, tol: 1e-5, "dW \(c)")
            assertClose(db, numeric(bd) { loss(xd, wd, $0) }, tol: 1e-5, "db \(c)")
        }
    }

    /// Shapes that take each parallel split: many row tiles, few row tiles (split over weight slivers), stride 2.
    /// Shapes large enough for the padded-grid weight gradient and the flipped-weight input gradient.
    func testBackwardMatchesNaiveOnLargerShapes() throws {
        let cases = [
            Case(n: 1, h: 21, w: 22, cin: 8, cout: 12, kh: 3, kw: 3, stride: 1, pad: 1),
            Case(n: 2, h: 24, w: 25, cin: 5, cout: 7, kh: 3, kw: 3, stride: 2, pad: 1),
            Case(n: 1, h: 30, w: 20, cin: 3, cout: 33, kh: 3, kw: 3, stride: 1, pad: 0),
        ]
        var rng = TestRandom(seed: 15)
        for c in cases {
            let g = try shape(c)
            let x = rng.tensor(g.inputShape), w = rng.tensor(g.weightShape), dy = rng.tensor(g.outputShape)
            let (dxWant, dwWant) = referenceConvBackward(x.scalars.map(Double.init), w.scalars.map(Double.init),
                                                         dy.scalars.map(Double.init), g)
            let dx = try conv2dBackwardInput(dy, weight: w, inputShape: g.inputShape, stride: c.stride, padding: c.pad)
            let dw = try conv2dBackwardWeight(dy, input: x, kernelHeight: 3, kernelWidth: 3, stride: c.stride,
                                              padding: c.pad)
            assertClose(dx, dxWant, tol: 2e-5, "dX \(c)")
            assertClose(dw, dwWant, tol: 2e-5, "dW \(c)")
        }
    }

    /// The narrow weight gradient (stride 1, ≤ 64 output channels): input-channel tails of 1–31 lanes, output
    /// channels not a multiple of 8 (dY copied zero-padded), paddings 0–2 (taps that leave the input), rectangular
    /// kernels and maps, a batch whose rows split across the two parts mid-image; and 1×1 with few input channels
    /// (a LoRA up convolution: sgemm's narrow product, the same kernel with X and dY swapped). One and two threads
    /// agree bitwise.
    func testNarrowWeightGradientMatchesNaive() throws {
        let cases = [
            Case(n: 2, h: 9, w: 11, cin: 20, cout: 8, kh: 3, kw: 3, stride: 1, pad: 1),
            Case(n: 1, h: 7, w: 6, cin: 3, cout: 1, kh: 3, kw: 3, stride: 1, pad: 0),
            Case(n: 3, h: 5, w: 8, cin: 48, cout: 13, kh: 3, kw: 3, stride: 1, pad: 2),
            Case(n: 1, h: 10, w: 9, cin: 33, cout: 16, kh: 1, kw: 3, stride: 1, pad: 1),
            Case(n: 2, h: 6, w: 7, cin: 64, cout: 64, kh: 5, kw: 5, stride: 1, pad: 2),
            Case(n: 1, h: 12, w: 12, cin: 32, cout: 40, kh: 3, kw: 1, stride: 1, pad: 0),
            Case(n: 2, h: 6, w: 5, cin: 8, cout: 40, kh: 1, kw: 1, stride: 1, pad: 0),
            Case(n: 1, h: 4, w: 7, cin: 13, cout: 16, kh: 1, kw: 1, stride: 1, pad: 0),
        ]
        var rng = TestRandom(seed: 17)
        for c in cases {
            let g = try shape(c)
            let x = rng.tensor(g.inputShape), w = rng.tensor(g.weightShape), dy = rng.tensor(g.outputShape)
            let (_, dwWant) = referenceConvBackward(x.scalars.map(Double.init), w.scalars.map(Double.init),
                                                   dy.scalars.map(Double.init), g)
            func run(_ threads: Int) throws -> Tensor {
                try Parallel.$maxThreads.withValue(threads) {
                    try conv2dBackwardWeight(dy, input: x, kernelHeight: c.kh, kernelWidth: c.kw, stride: 1, padding: c.pad)
                }
            }
            let dw = try run(2)
            XCTAssertEqual(dw.shape, g.weightShape, "\(c)")
            assertClose(dw, dwWant, tol: 2e-5, "dW \(c)")
            XCTAssertEqual(try run(1).scalars.map(\.bitPattern), dw.scalars.map(\.bitPattern), "threads \(c)")
        }
    }

    /// Past 8 MiB of input and output gradient the narrow kernel cuts the rows into cache-sized chunks (here 5 of
    /// 102–103 rows) instead of two halves: still the naive sums, still the same bits on one thread and two.
    func testNarrowWeightGradientInRowChunksMatchesNaive() throws {
        let (n, h, w, cin, cout) = (8, 64, 64, 64, 8)
        var rng = TestRandom(seed: 23)
        let x = rng.tensor([n, h, w, cin]), dy = rng.tensor([n, h, w, cout])
        var want = [Double](repeating: 0, count: 9 * cin * cout)
        x.withUnsafeBufferPointer { xp in
            dy.withUnsafeBufferPointer { dp in
                want.withUnsafeMutableBufferPointer { wp in
                    var column = [Double](repeating: 0, count: cin)
                    for b in 0..<n { for oy in 0..<h { for ox in 0..<w {
                        let d = dp.baseAddress! + ((b * h + oy) * w + ox) * cout
                        for tap in 0..<9 {
                            let iy = oy + tap / 3 - 1, ix = ox + tap % 3 - 1
                            guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
                            let xs = xp.baseAddress! + ((b * h + iy) * w + ix) * cin
                            for c in 0..<cin { column[c] = Double(xs[c]) }
                            for c in 0..<cin {
                                let row = wp.baseAddress! + (tap * cin + c) * cout
                                for o in 0..<cout { row[o] += column[c] * Double(d[o]) }
                            }
                        }
                    } } }
                }
            }
        }
        func run(_ threads: Int) throws -> Tensor {
            try Parallel.$maxThreads.withValue(threads) {
                try conv2dBackwardWeight(dy, input: x, kernelHeight: 3, kernelWidth: 3, stride: 1, padding: 1)
            }
        }
        let dw = try run(2)
        assertClose(dw, want, tol: 2e-5, "dW in row chunks")
        XCTAssertEqual(try run(1).scalars.map(\.bitPattern), dw.scalars.map(\.bitPattern), "threads")
    }

    func testThreadCountsAgreeAndRerunsAreBitwiseEqual() throws {
        var rng = TestRandom(seed: 13)
        for (xs, ws, stride) in [([1, 20, 20, 64], [3, 3, 64, 96], 1), ([1, 4, 4, 64], [3, 3, 64, 320], 1),
                                 ([2, 17, 16, 48], [3, 3, 48, 40], 2)] {
            let x = rng.tensor(xs), w = rng.tensor(ws), b = rng.tensor([ws[3]])
            func run(_ threads: Int) throws -> [Tensor] {
                try Parallel.$maxThreads.withValue(threads) {
                    let y = try conv2d(x, weight: w, bias: b, stride: stride, padding: 1)
                    let dx = try conv2dBackwardInput(y, weight: w, inputShape: x.shape, stride: stride, padding: 1)
                    let dw = try conv2dBackwardWeight(y, input: x, kernelHeight: 3, kernelWidth: 3, stride: stride,
                                                      padding: 1)
                    return [y, dx, dw]
                }
            }
            let one = try run(1), two = try run(2), again = try run(2)
            for (a, b) in zip(one, two) {
                for i in 0..<a.count { XCTAssertEqual(a[flat: i], b[flat: i], accuracy: 1e-6 * max(1, abs(a[flat: i]))) }
            }
            for (a, b) in zip(two, again) { XCTAssertEqual(a.scalars.map(\.bitPattern), b.scalars.map(\.bitPattern)) }
            let want = referenceConv(x.scalars.map(Double.init), w.scalars.map(Double.init), b.scalars.map(Double.init),
                                     try Conv2DShape(input: xs, weight: ws, stride: stride, padding: 1, op: "test"))
            assertClose(two[0], want, tol: 1e-5, "forward \(xs) * \(ws) on 2 threads")
        }
    }

    func testBadShapesThrowWithShapes() {
        var rng = TestRandom(seed: 14)
        let x = rng.tensor([1, 5, 5, 3]), w = rng.tensor([3, 3, 4, 8])
        XCTAssertThrowsError(try conv2d(x, weight: w, padding: 1)) { error in
            XCTAssertTrue("\(error)".contains("[1, 5, 5, 3]") && "\(error)".contains("[3, 3, 4, 8]"), "\(error)")
        }
        XCTAssertThrowsError(try conv2d(rng.tensor([5, 5, 3]), weight: w))
        XCTAssertThrowsError(try conv2d(rng.tensor([1, 2, 2, 4]), weight: w)) { error in
            XCTAssertTrue("\(error)".contains("[1, 2, 2, 4]"), "\(error)")
        }
        XCTAssertThrowsError(try conv2d(rng.tensor([1, 5, 5, 4]), weight: w, bias: rng.tensor([7]))) { error in
            XCTAssertTrue("\(error)".contains("[7]"), "\(error)")
        }
        XCTAssertThrowsError(try conv2d(rng.tensor([1, 5, 5, 4]), weight: w, stride: 0))
        XCTAssertThrowsError(try conv2dBackwardInput(rng.tensor([1, 4, 4, 8]), weight: w, inputShape: [1, 5, 5, 4],
                                                     padding: 1)) { error in
            XCTAssertTrue("\(error)".contains("[1, 4, 4, 8]"), "\(error)")
        }
        XCTAssertThrowsError(try conv2dBackwardWeight(rng.tensor([1, 5, 5, 8]), input: rng.tensor([1, 5, 5, 4]),
                                                      kernelHeight: 3, kernelWidth: 3, padding: 0))
        XCTAssertThrowsError(try conv2dBackwardBias(rng.tensor([4, 8])))
    }
}
