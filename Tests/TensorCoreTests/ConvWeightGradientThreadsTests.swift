// The convolution weight gradient runs its taps side by side for small channel counts (one single-threaded
// GEMM per tap), with few output channels each strided tap's GEMM runs sgemm's narrow product, and a stride-1
// gradient with at most 64 output channels runs the narrow kernel (per tap, block of channels and fixed part of
// the rows): every element must come out bit for bit as with one thread, and the strided GEMMs as plain per-tap
// GEMMs sum it.
import TensorCore
import XCTest

final class ConvWeightGradientThreadsTests: XCTestCase {
    private func filled(_ shape: [Int], seed: Int) -> Tensor {
        Tensor(shape: shape) { buffer in
            for i in buffer.indices { buffer[i] = Float((i * 7919 + seed * 104_729) % 2003) / 1001 - 1 }
        }
    }

    private func check(stride: Int, size: Int, cout: Int = 16) throws {
        let input = filled([2, size, size, 32], seed: 1)
        let out = (size + 2 - 3) / stride + 1
        let gradOutput = filled([2, out, out, cout], seed: 2)
        func run(threads: Int) throws -> Tensor {
            try Parallel.$maxThreads.withValue(threads) {
                try conv2dBackwardWeight(gradOutput, input: input, kernelHeight: 3, kernelWidth: 3, stride: stride, padding: 1)
            }
        }
        let one = try run(threads: 1)
        for threads in [2, 4] {
            let many = try run(threads: threads)
            XCTAssertEqual(many.shape, [3, 3, 32, cout])
            XCTAssertEqual(many.scalars, one.scalars, "stride \(stride), \(threads) threads")
        }
    }

    /// dW[tap] = X_tapᵀ · dY, one GEMM per tap over the positions the kernel's paths use: the padded grid
    /// (stride 1, width ≥ 20; dY is zero at its junk positions) or the output positions (strided).
    private func perTapReference(_ x: Tensor, _ dy: Tensor, stride: Int, cout: Int) -> [Float] {
        let (n, h, w, cin) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]), hp = h + 2, wp = w + 2
        let ho = dy.shape[1], wo = dy.shape[2]
        var xpad = [Float](repeating: 0, count: (n * hp * wp + 3 * wp) * cin)
        for b in 0..<n { for y in 0..<h { for xx in 0..<w { for c in 0..<cin {
            xpad[((b * hp + y + 1) * wp + xx + 1) * cin + c] = x[flat: ((b * h + y) * w + xx) * cin + c]
        } } } }
        let onGrid = stride == 1
        let k = onGrid ? n * hp * wp : n * ho * wo
        var a = [Float](repeating: 0, count: k * cin), bm = [Float](repeating: 0, count: k * cout)
        var out = [Float](repeating: 0, count: 9 * cin * cout)
        for tap in 0..<9 {
            let dy0 = tap / 3, dx0 = tap % 3
            for p in 0..<k {
                let (b, y, xx) = onGrid ? (p / (hp * wp), (p / wp) % hp, p % wp) : (p / (ho * wo), (p / wo) % ho, p % wo)
                let src = onGrid ? p + dy0 * wp + dx0 : (b * hp + y * stride + dy0) * wp + xx * stride + dx0
                for c in 0..<cin { a[p * cin + c] = xpad[src * cin + c] }
                for c in 0..<cout {
                    let valid = !onGrid || (y < ho && xx < wo)
                    bm[p * cout + c] = valid ? dy[flat: ((b * ho + y) * wo + xx) * cout + c] : 0
                }
            }
            out.withUnsafeMutableBufferPointer { o in
                sgemm(transA: true, transB: false, m: cin, n: cout, k: k, alpha: 1, a: a, lda: cin, b: bm, ldb: cout,
                      beta: 0, c: o.baseAddress! + tap * cin * cout, ldc: cout)
            }
        }
        return out
    }

    func testFewOutputChannelsEqualThePerTapGEMMsBitwise() throws {
        for stride in [2] {   // stride 1 with 16 output channels is the narrow kernel's (Conv2DTests check it)
            let x = filled([2, 24, 24, 32], seed: 3)
            let out = (24 + 2 - 3) / stride + 1
            let dy = filled([2, out, out, 16], seed: 4)
            let dw = try conv2dBackwardWeight(dy, input: x, kernelHeight: 3, kernelWidth: 3, stride: stride, padding: 1)
            XCTAssertEqual(dw.scalars, perTapReference(x, dy, stride: stride, cout: 16), "stride \(stride)")
        }
    }

    func testNarrowKernelMatchesOneThreadBitwise() throws {
        for cout in [16, 5, 64] { try check(stride: 1, size: 24, cout: cout) }
    }

    func testGridPathMatchesOneThreadBitwise() throws { try check(stride: 1, size: 24, cout: 80) }

    func testGatheredPathMatchesOneThreadBitwise() throws { try check(stride: 2, size: 24) }

    func testTapsSideBySideMatchOneThreadBitwise() throws {
        try check(stride: 1, size: 24, cout: 72)
        try check(stride: 2, size: 24, cout: 48)
    }
}
