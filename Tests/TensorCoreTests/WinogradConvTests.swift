// Winograd F(2×2, 3×3) and F(4×4, 3×3) (stride-1 3×3 convolutions, forward and input gradient) against the naive
// Double convolution and against the implicit GEMM they replace: odd sizes (tiles cut by the edge), paddings 0–2,
// channel counts off the 16-lane vectors, the chunked and the all-tiles-at-once schedules, thread counts, and the
// shapes left to the implicit GEMM.
import XCTest
@testable import TensorCore

final class WinogradConvTests: XCTestCase {
    struct Case { var n, h, w, cin, cout, pad: Int }
    enum Algorithm { case implicitGEMM, smallTiles, auto }

    struct Result { var y, dx, x, w, b, dy: Tensor }

    /// Forward and input gradient of one random case with the given algorithm (`smallTiles`: F(2×2, 3×3) only;
    /// `auto`: what the kernels choose).
    private func run(_ c: Case, _ algorithm: Algorithm, seed: UInt64) throws -> Result {
        let x = randomTensor([c.n, c.h, c.w, c.cin], seed: seed), w = randomTensor([3, 3, c.cin, c.cout], seed: seed + 1, scale: 0.3)
        let b = randomTensor([c.cout], seed: seed + 2)
        let dy = randomTensor([c.n, c.h + 2 * c.pad - 2, c.w + 2 * c.pad - 2, c.cout], seed: seed + 3)
        return try ConvolutionAlgorithm.$winogradAllowed.withValue(algorithm != .implicitGEMM) {
            try ConvolutionAlgorithm.$winogradLargeTiles.withValue(algorithm == .auto) {
                let y = try conv2d(x, weight: w, bias: b, stride: 1, padding: c.pad)
                let dx = try conv2dBackwardInput(dy, weight: w, inputShape: x.shape, stride: 1, padding: c.pad)
                return Result(y: y, dx: dx, x: x, w: w, b: b, dy: dy)
            }
        }
    }

    private func differingBits(_ a: Tensor, _ b: Tensor) -> Int {
        zip(a.scalars, b.scalars).filter { $0.bitPattern != $1.bitPattern }.count
    }

    /// Within 2e-5 relative, plus 3e-5 of the outputs' largest magnitude: F(4×4)'s transforms multiply by up to 25
    /// and its weight transform by 1/6 and 1/24, so it rounds at up to ~1e-5 of that scale (measured: 1.2e-5 over
    /// the 800K input-gradient values of the 800→784-channel case, K = 7056), F(2×2) at ~1e-7.
    private func assertNear(_ got: Tensor, _ want: [Double], _ what: String, line: UInt = #line) {
        let scale = want.map(abs).max() ?? 1
        assertClose(got, want, atol: 3e-5 * max(scale, 1), rtol: 2e-5, what, line: line)
    }

    func testMatchesNaiveAndDiffersFromImplicitGEMMOnlyByRounding() throws {
        let cases = [   // F(2×2): fewer than 64 channels on a side
            Case(n: 2, h: 7, w: 9, cin: 33, cout: 47, pad: 1),    // odd outputs: half tiles on both edges
            Case(n: 1, h: 6, w: 5, cin: 32, cout: 32, pad: 0),    // the fewest channels, no padding
            Case(n: 1, h: 5, w: 6, cin: 40, cout: 32, pad: 2),    // padding 2: the input gradient's padding is 0
            Case(n: 2, h: 16, w: 16, cin: 32, cout: 40, pad: 1),  // many tiles: several chunks per worker
            Case(n: 1, h: 3, w: 3, cin: 48, cout: 36, pad: 1),    // one tile per image
        ]
        let largeTileCases = [   // F(4×4): 64 channels or more on both sides
            Case(n: 1, h: 9, w: 11, cin: 64, cout: 72, pad: 1),   // tiles cut by 1 and 3 on the edges
            Case(n: 2, h: 6, w: 6, cin: 80, cout: 64, pad: 0),    // one whole tile per image
            Case(n: 1, h: 5, w: 7, cin: 64, cout: 65, pad: 2),    // padding 2; a 1-lane channel tail
        ]
        for (i, c) in (cases + largeTileCases).enumerated() {
            let g = try Conv2DShape(input: [c.n, c.h, c.w, c.cin], weight: [3, 3, c.cin, c.cout], stride: 1,
                                    padding: c.pad, op: "test")
            let fast = try run(c, .auto, seed: UInt64(10 * i))
            let direct = try run(c, .implicitGEMM, seed: UInt64(10 * i))
            let xd = doubles(fast.x), wd = doubles(fast.w)
            let want = referenceConv(xd, wd, doubles(fast.b), g)
            let (dxWant, _) = referenceConvBackward(xd, wd, doubles(fast.dy), g)
            assertNear(fast.y, want, "forward \(c)")
            assertNear(fast.dx, dxWant, "input gradient \(c)")
            assertNear(direct.y, want, "forward (implicit GEMM) \(c)")
            // Other sums of the same products: not bitwise the implicit GEMM's (else Winograd did not run), and
            // for the large-tile cases not F(2×2)'s either.
            XCTAssertGreaterThan(differingBits(fast.y, direct.y), 0, "forward \(c): the implicit GEMM's bits")
            XCTAssertGreaterThan(differingBits(fast.dx, direct.dx), 0, "input gradient \(c): the implicit GEMM's bits")
            if i >= cases.count {
                let small = try run(c, .smallTiles, seed: UInt64(10 * i))
                assertNear(small.y, want, "forward F(2×2) \(c)")
                XCTAssertGreaterThan(differingBits(fast.y, small.y), 0, "forward \(c): F(2×2)'s bits")
            }
        }
    }

    /// Both schedules (chunks of tiles per worker; all tiles at once when both channel counts are large) with
    /// both tile sizes, on one and two threads: bitwise the same, and within rounding of the implicit GEMM.
    func testSchedulesAndThreadCountsAgreeBitwise() throws {
        let chunked = Case(n: 2, h: 20, w: 18, cin: 64, cout: 48, pad: 1)
        let chunkedLarge = Case(n: 2, h: 19, w: 18, cin: 64, cout: 96, pad: 1)
        let allTiles = Case(n: 2, h: 32, w: 32, cin: 800, cout: 784, pad: 1)   // 128 tiles of 4×4
        for (c, algorithm) in [(chunked, Algorithm.auto), (chunkedLarge, .auto), (allTiles, .auto), (allTiles, .smallTiles)] {
            func outputs(_ threads: Int) throws -> [Tensor] {
                try Parallel.$maxThreads.withValue(threads) {
                    let r = try run(c, algorithm, seed: 99)
                    return [r.y, r.dx]
                }
            }
            let one = try outputs(1), two = try outputs(2)
            for (a, b) in zip(one, two) { XCTAssertEqual(differingBits(a, b), 0, "\(c) \(algorithm): 1 and 2 threads") }
            let direct = try run(c, .implicitGEMM, seed: 99)
            assertNear(two[0], doubles(direct.y), "forward \(c) \(algorithm)")
            assertNear(two[1], doubles(direct.dx), "input gradient \(c) \(algorithm)")
            XCTAssertGreaterThan(differingBits(two[0], direct.y), 0, "forward \(c) \(algorithm): the implicit GEMM's bits")
        }
    }

    /// A large weight over few tiles (its transform would cost more than it saves), fewer than 32 channels on a
    /// side (a LoRA down convolution), strides other than 1 and kernels other than 3×3 stay on the implicit GEMM:
    /// bitwise its results.
    func testOtherShapesKeepTheImplicitGEMM() throws {
        for c in [Case(n: 1, h: 6, w: 7, cin: 800, cout: 784, pad: 1), Case(n: 2, h: 16, w: 16, cin: 128, cout: 16, pad: 1)] {
            let auto = try run(c, .auto, seed: 5), direct = try run(c, .implicitGEMM, seed: 5)
            XCTAssertEqual(differingBits(auto.y, direct.y), 0, "\(c)")
            XCTAssertEqual(differingBits(auto.dx, direct.dx), 0, "\(c)")
        }
        let x = randomTensor([1, 9, 9, 32], seed: 1), w = randomTensor([3, 3, 32, 32], seed: 2)
        let w5 = randomTensor([5, 5, 32, 32], seed: 3)
        for (weight, stride, padding) in [(w, 2, 1), (w5, 1, 2)] {
            let a = try conv2d(x, weight: weight, stride: stride, padding: padding)
            let b = try ConvolutionAlgorithm.$winogradAllowed.withValue(false) {
                try conv2d(x, weight: weight, stride: stride, padding: padding)
            }
            XCTAssertEqual(differingBits(a, b), 0, "\(weight.shape) stride \(stride)")
        }
    }
}
