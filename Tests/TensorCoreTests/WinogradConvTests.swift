// Winograd F(2×2, 3×3) (stride-1 3×3 convolutions, forward and input gradient) against the naive Double
// convolution and against the implicit GEMM it replaces: odd sizes (tiles cut by the edge), paddings 0–2,
// channel counts off the 16-lane vectors, the chunked and the all-tiles-at-once schedules, thread counts.
import XCTest
@testable import TensorCore

final class WinogradConvTests: XCTestCase {
    struct Case { var n, h, w, cin, cout, pad: Int }

    /// Forward, input gradient (and weight gradient, which does not use Winograd) with Winograd on or off.
    private func run(_ c: Case, winograd: Bool, seed: UInt64) throws -> (y: Tensor, dx: Tensor, x: Tensor, w: Tensor, b: Tensor, dy: Tensor) {
        let x = randomTensor([c.n, c.h, c.w, c.cin], seed: seed), w = randomTensor([3, 3, c.cin, c.cout], seed: seed + 1, scale: 0.3)
        let b = randomTensor([c.cout], seed: seed + 2)
        let outShape = [c.n, c.h + 2 * c.pad - 2, c.w + 2 * c.pad - 2, c.cout]
        let dy = randomTensor(outShape, seed: seed + 3)
        return try ConvolutionAlgorithm.$winogradAllowed.withValue(winograd) {
            let y = try conv2d(x, weight: w, bias: b, stride: 1, padding: c.pad)
            let dx = try conv2dBackwardInput(dy, weight: w, inputShape: x.shape, stride: 1, padding: c.pad)
            return (y, dx, x, w, b, dy)
        }
    }

    func testMatchesNaiveAndDiffersFromImplicitGEMMOnlyByRounding() throws {
        let cases = [
            Case(n: 2, h: 7, w: 9, cin: 17, cout: 33, pad: 1),    // odd outputs: half tiles on both edges
            Case(n: 1, h: 6, w: 5, cin: 8, cout: 8, pad: 0),      // the fewest channels, no padding
            Case(n: 1, h: 5, w: 6, cin: 24, cout: 16, pad: 2),    // padding 2: the input gradient's padding is 0
            Case(n: 2, h: 16, w: 16, cin: 32, cout: 40, pad: 1),  // many tiles: several chunks per worker
            Case(n: 1, h: 3, w: 3, cin: 48, cout: 9, pad: 1),     // one tile per image
        ]
        for (i, c) in cases.enumerated() {
            let g = try Conv2DShape(input: [c.n, c.h, c.w, c.cin], weight: [3, 3, c.cin, c.cout], stride: 1,
                                    padding: c.pad, op: "test")
            let fast = try run(c, winograd: true, seed: UInt64(10 * i))
            let direct = try run(c, winograd: false, seed: UInt64(10 * i))
            let xd = doubles(fast.x), wd = doubles(fast.w)
            let want = referenceConv(xd, wd, doubles(fast.b), g)
            let (dxWant, _) = referenceConvBackward(xd, wd, doubles(fast.dy), g)
            assertClose(fast.y, want, atol: 2e-5, rtol: 2e-5, "forward \(c)")
            assertClose(fast.dx, dxWant, atol: 2e-5, rtol: 2e-5, "input gradient \(c)")
            // The implicit GEMM sums the same products in another order: equal within rounding, and not
            // bitwise (else the Winograd path did not run).
            assertClose(direct.y, want, atol: 2e-5, rtol: 2e-5, "forward (implicit GEMM) \(c)")
            let differing = zip(fast.y.scalars, direct.y.scalars).filter { $0.bitPattern != $1.bitPattern }.count
            XCTAssertGreaterThan(differing, 0, "forward \(c): Winograd gave the implicit GEMM's bits")
        }
    }

    /// Both schedules (chunks of tiles per worker; all tiles at once when both channel counts are large), on one
    /// and two threads: bitwise the same, and right.
    func testSchedulesAndThreadCountsAgreeBitwise() throws {
        for c in [Case(n: 2, h: 20, w: 18, cin: 64, cout: 48, pad: 1), Case(n: 1, h: 6, w: 7, cin: 800, cout: 784, pad: 1)] {
            func outputs(_ threads: Int) throws -> [Tensor] {
                try Parallel.$maxThreads.withValue(threads) {
                    let r = try run(c, winograd: true, seed: 99)
                    return [r.y, r.dx]
                }
            }
            let one = try outputs(1), two = try outputs(2)
            for (a, b) in zip(one, two) { XCTAssertEqual(a.scalars.map(\.bitPattern), b.scalars.map(\.bitPattern), "\(c)") }
            let r = try run(c, winograd: false, seed: 99)
            let scale = r.y.scalars.map { abs(Double($0)) }.max() ?? 1
            assertClose(two[0], doubles(r.y), atol: 1e-5 * scale, rtol: 1e-5, "forward \(c)")
            let dxScale = r.dx.scalars.map { abs(Double($0)) }.max() ?? 1
            assertClose(two[1], doubles(r.dx), atol: 1e-5 * dxScale, rtol: 1e-5, "input gradient \(c)")
        }
    }
}
