// Gradient accumulation: `sum += g` over two equally shaped tensors.
import TensorCore

/// `sum += g` elementwise; both have the same shape (checked by the caller).
func addInPlace(_ sum: inout Tensor, _ g: Tensor) {
    let n = g.count
    g.withUnsafeBufferPointer { src in
        sum.withUnsafeMutableBufferPointer { dst in
            let s = src.baseAddress!, d = dst.baseAddress!
            var i = 0
            while i + 16 <= n {
                let a = UnsafeRawPointer(d + i).loadUnaligned(as: SIMD16<Float>.self)
                let b = UnsafeRawPointer(s + i).loadUnaligned(as: SIMD16<Float>.self)
                UnsafeMutableRawPointer(d + i).storeBytes(of: a + b, as: SIMD16<Float>.self)
                i += 16
            }
            while i < n { d[i] += s[i]; i += 1 }
        }
    }
}
