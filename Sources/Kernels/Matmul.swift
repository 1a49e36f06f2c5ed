// Matmul: Tensor-level matrix products on top of `sgemm`.
//
//   [M, K] x [K, N]          -> [M, N]
//   [B, M, K] x [B, K, N]    -> [B, M, N]   (batched; e.g. attention heads)
//   [B, M, K] x [K, N]       -> [B, M, N]   (one matrix for every batch item; e.g. token projections)
// `transposeA` / `transposeB` transpose the last two dimensions of the operand as stored.
import TensorBase

extension Tensor {
    /// Rows and columns of the last two dimensions, after an optional transpose.
    fileprivate func matrixDims(transposed: Bool) -> (rows: Int, cols: Int) {
        let r = shape[rank - 2], c = shape[rank - 1]
        return transposed ? (c, r) : (r, c)
    }
}

/// Matrix product of `a` and `b` (rank 2 or 3; see the file header for the accepted combinations).
/// Throws `TensorError.shapeMismatch` naming both shapes when they do not fit.
public func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) throws -> Tensor {
    func mismatch(_ why: String) -> TensorError {
        TensorError.shapeMismatch("matmul\(transposeA ? " (Aᵀ)" : "")\(transposeB ? " (Bᵀ)" : ""): \(why): "
                                  + "A \(a.shape), B \(b.shape)")
    }
    guard (2...3).contains(a.rank), (2...3).contains(b.rank) else { throw mismatch("operands must have rank 2 or 3") }
    guard !(a.rank == 2 && b.rank == 3) else { throw mismatch("a 2-D A needs a 2-D B") }
    let (m, k) = a.matrixDims(transposed: transposeA)
    let (kb, n) = b.matrixDims(transposed: transposeB)
    guard k == kb else { throw mismatch("inner dimensions \(k) and \(kb) differ") }
    let batch = a.rank == 3 ? a.shape[0] : 1
    if b.rank == 3 && b.shape[0] != batch { throw mismatch("batch sizes \(batch) and \(b.shape[0]) differ") }

    let outShape = a.rank == 3 ? [batch, m, n] : [m, n]
    let lda = a.shape[a.rank - 1], ldb = b.shape[b.rank - 1]
    let bStride = b.rank == 3 ? k * n : 0
    return a.withUnsafeBufferPointer { pa in
        b.withUnsafeBufferPointer { pb in
            Tensor(shape: outShape) { out in
                batchedSGEMM(batch: batch, transA: transposeA, transB: transposeB, m: m, n: n, k: k,
                             a: pa.baseAddress!, lda: lda, strideA: m * k,
                             b: pb.baseAddress!, ldb: ldb, strideB: bStride,
                             c: out.baseAddress!, ldc: n, strideC: m * n)
            }
        }
    }
}

/// `C[i] = op(A[i]) * op(B[i])` for `i in 0..<batch`, with element strides between the batch items
/// (a stride of 0 reuses one matrix). Small products run one per thread; large ones split internally.
public func batchedSGEMM(batch: Int, transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
                         a: UnsafePointer<Float>, lda: Int, strideA: Int,
                         b: UnsafePointer<Float>, ldb: Int, strideB: Int,
                         c: UnsafeMutablePointer<Float>, ldc: Int, strideC: Int) {
    let flops = 2 * m * n * k
    if strideB == 0 && !transA && lda == k && ldc == n && strideA == m * k && strideC == m * n {
        sgemm(transA: false, transB: transB, m: batch * m, n: n, k: k, alpha: 1, a: a, lda: lda,
              b: b, ldb: ldb, beta: 0, c: c, ldc: ldc)
        return
    }
    let inner = Parallel.workers(for: flops, minWorkPerThread: gemmMinFlopsPerThread)
    let outer = inner > 1 ? 1 : min(batch, Parallel.workers(for: flops * batch, minWorkPerThread: gemmMinFlopsPerThread))
    let one = { (i: Int) in
        sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 1, a: a + i * strideA, lda: lda,
              b: b + i * strideB, ldb: ldb, beta: 0, c: c + i * strideC, ldc: ldc)
    }
    if outer <= 1 {
        for i in 0..<batch { one(i) }
    } else {
        Parallel.forChunks(count: batch, workers: outer, chunksPerWorker: 4) { _, range in
            Parallel.$maxThreads.withValue(1) { for i in range { one(i) } }
        }
    }
}
