// Matrix products and the Linear map, with VJPs that skip every product nobody needs:
// a frozen weight (requiresGrad false) never costs a dW GEMM, an input that needs no gradient no dX GEMM.
import TensorCore

/// Matrix product of rank-2/3 operands (`TensorCore.matmul` semantics: [M,K]·[K,N], [B,M,K]·[B,K,N],
/// [B,M,K]·[K,N]); `transposeA`/`transposeB` transpose the last two dimensions as stored.
public func matmul(_ a: Variable, _ b: Variable, transposeA: Bool = false, transposeB: Bool = false) throws -> Variable {
    let y = try TensorCore.matmul(a.value, b.value, transposeA: transposeA, transposeB: transposeB)
    let (na, nb) = (a.requiresGrad, b.requiresGrad)
    // Keep only what the needed gradients read: dA reads B, dB reads A.
    let (va, vb) = (nb ? a.value : Tensor(zeros: [0]), na ? b.value : Tensor(zeros: [0]))
    let bShape = b.shape
    return Variable.result(y, of: "matmul", inputs: [a, b]) { g in
        // C = op(A)·op(B):  dA = g·op(B)ᵀ (then transposed back if A was), dB likewise.
        var da: Tensor?, db: Tensor?
        if na {
            GradMode.note("matmul.dA")
            da = transposeA ? try TensorCore.matmul(vb, g, transposeA: transposeB, transposeB: true)
                            : try TensorCore.matmul(g, vb, transposeA: false, transposeB: !transposeB)
        }
        if nb {
            GradMode.note("matmul.dB")
            db = try batchReduced(transposeB ? TensorCore.matmul(g, va, transposeA: true, transposeB: transposeA)
                                             : TensorCore.matmul(va, g, transposeA: !transposeA, transposeB: false),
                                  to: bShape)
        }
        return [da, db]
    }
}

/// dB of a batched A times one shared B is the per-batch dB summed over the batch.
private func batchReduced(_ d: Tensor, to shape: [Int]) throws -> Tensor {
    if d.shape == shape { return d }
    return try Reduction.sum(d, axis: 0)
}

/// y = x·Wᵀ + b for x [..., in], W [out, in] (checkpoint order), b [out] → y [..., out].
///
/// The VJP computes dX = g·W only when x needs a gradient, dW = gᵀ·x only when W does, and db = Σ g
/// only when b does: a frozen Linear whose input needs no gradient costs nothing in backward. With `bfloat16`
/// (the same weight packed by `BFloat16Weight.linear`), the forward product runs on BF16-rounded operands, and with
/// `bfloat16InputGradient` (`BFloat16Weight.linearInputGradient`) so does dX; then `weight.value` may be empty (a
/// layer that holds its frozen weight in BF16 only), as long as dX has its packing.
public func linear(_ x: Variable, weight: Variable, bias: Variable?, bfloat16: BFloat16Weight? = nil,
                   bfloat16InputGradient: BFloat16Weight? = nil) throws -> Variable {
    let xv = x.value, w = weight.value
    let wShape = bfloat16?.sourceShape ?? w.shape                           // a layer holding BF16 only: w is empty
    guard wShape.count == 2, let inFeatures = xv.shape.last, inFeatures == wShape[1] else {
        throw AutogradError.invalidInput("linear: input \(xv.shape) does not fit weight \(wShape) ([out, in])")
    }
    let outFeatures = wShape[0], rows = xv.count / max(inFeatures, 1)
    if let bias, bias.shape != [outFeatures] {
        throw AutogradError.invalidInput("linear: bias \(bias.shape) does not fit weight \(wShape)")
    }
    let x2 = xv.reshapedUnchecked([rows, inFeatures])                        // [rows, in]
    let y = try bfloat16.map { try bfloat16Linear(x2, weight: $0, bias: bias?.value) }
        ?? bias.map { affine(x2, w, $0.value) } ?? TensorCore.matmul(x2, w, transposeB: true)   // [rows, out]
    let outShape = Array(xv.shape.dropLast()) + [outFeatures]
    let (nx, nw, nb) = (x.requiresGrad, weight.requiresGrad, bias?.requiresGrad ?? false)
    let inputs = bias.map { [x, weight, $0] } ?? [x, weight], hasBias = bias != nil
    let savedX = nw ? x2 : Tensor(zeros: [0])                               // only dW reads the input
    let inShape = xv.shape
    return Variable.result(y.reshapedUnchecked(outShape), of: "linear", inputs: inputs) { g in
        let g2 = g.reshapedUnchecked([rows, outFeatures])                    // [rows, out]
        var grads: [Tensor?] = [nil, nil]
        if nx {
            GradMode.note("linear.dInput")
            grads[0] = try (bfloat16InputGradient.map { try bfloat16Linear(g2, weight: $0, bias: nil) }
                            ?? TensorCore.matmul(g2, w)).reshapedUnchecked(inShape)   // [rows, in]
        }
        if nw {
            GradMode.note("linear.dWeight")
            grads[1] = try TensorCore.matmul(g2, savedX, transposeA: true)        // [out, in]
        }
        if hasBias {
            if nb { GradMode.note("linear.dBias") }
            grads.append(nb ? try Reduction.sum(g2, axis: 0) : nil)          // [out]
        }
        return grads
    }
}

/// x·Wᵀ + b in one GEMM: the output starts as b in every row and the GEMM accumulates onto it (also FoldedLoRA.swift).
func affine(_ x: Tensor, _ w: Tensor, _ b: Tensor) -> Tensor {
    let (rows, k, n) = (x.shape[0], x.shape[1], w.shape[0])
    return Tensor(shape: [rows, n]) { out in
        b.withUnsafeBufferPointer { pb in
            for r in 0..<rows { (out.baseAddress! + r * n).update(from: pb.baseAddress!, count: n) }
        }
        x.withUnsafeBufferPointer { px in
            w.withUnsafeBufferPointer { pw in
                sgemm(transA: false, transB: true, m: rows, n: n, k: k, alpha: 1, a: px.baseAddress!, lda: k,
                      b: pw.baseAddress!, ldb: k, beta: 1, c: out.baseAddress!, ldc: n)
            }
        }
    }
}
