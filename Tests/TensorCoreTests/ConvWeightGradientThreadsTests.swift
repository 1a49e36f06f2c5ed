// The convolution weight gradient runs its taps side by side for small channel counts (one single-threaded
// GEMM per tap); every element must come out bit for bit as with one thread, on both of its paths.
import TensorCore
import XCTest

final class ConvWeightGradientThreadsTests: XCTestCase {
    private func filled(_ shape: [Int], seed: Int) -> Tensor {
        Tensor(shape: shape) { buffer in
            for i in buffer.indices { buffer[i] = Float((i * 7919 + seed * 104_729) % 2003) / 1001 - 1 }
        }
    }

    private func check(stride: Int, size: Int) throws {
        let input = filled([2, size, size, 32], seed: 1)
        let out = (size + 2 - 3) / stride + 1
        let gradOutput = filled([2, out, out, 16], seed: 2)
        func run(threads: Int) throws -> Tensor {
            try Parallel.$maxThreads.withValue(threads) {
                try conv2dBackwardWeight(gradOutput, input: input, kernelHeight: 3, kernelWidth: 3, stride: stride, padding: 1)
            }
        }
        let one = try run(threads: 1)
        for threads in [2, 4] {
            let many = try run(threads: threads)
            XCTAssertEqual(many.shape, [3, 3, 32, 16])
            XCTAssertEqual(many.scalars, one.scalars, "stride \(stride), \(threads) threads")
        }
    }

    func testGridPathMatchesOneThreadBitwise() throws { try check(stride: 1, size: 24) }

    func testGatheredPathMatchesOneThreadBitwise() throws { try check(stride: 2, size: 24) }
}
