// HalfPrecision: bulk F16 / BF16 <-> F32 conversion on raw pointers (safetensors storage types).
//
// Pure integer/float bit manipulation, branch-free so the loops vectorise to zmm code (no AVX512-FP16
// instructions, which not every AVX-512 machine has). binary16 widening is exact: the 15 exponent+mantissa
// bits shifted into place and scaled by 2^112 (this also renormalises subnormals); Inf/NaN get an all-ones
// exponent. Narrowing rounds to nearest-even, overflows to ±Inf, produces subnormals by adding a magic
// constant, and keeps NaN a quiet NaN. bfloat16 is the top half of a binary32: widening is a shift,
// narrowing rounds to nearest-even on the integer bits.
import TensorBase

/// Widens `count` IEEE half-precision values (as bit patterns) to Float; exact.
public func convertF16ToF32(_ src: UnsafePointer<UInt16>, _ dst: UnsafeMutablePointer<Float>, count: Int) {
    let scale = Float(sign: .plus, exponent: 112, significand: 1)
    for i in 0..<count {
        let h = UInt32(src[i])
        let sign = (h & 0x8000) &<< 16
        let shifted = (h & 0x7FFF) &<< 13
        let finite = (Float(bitPattern: shifted) * scale).bitPattern
        let special = shifted | 0x7F80_0000
        dst[i] = Float(bitPattern: (shifted >= 0x0F80_0000 ? special : finite) | sign)
    }
}

/// Narrows `count` Floats to IEEE half precision (round-to-nearest-even; overflow gives ±Inf).
public func convertF32ToF16(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<UInt16>, count: Int) {
    let denormMagic: UInt32 = ((127 - 15) + (23 - 10) + 1) &<< 23
    for i in 0..<count {
        let bits = src[i].bitPattern
        let sign = (bits &>> 16) & 0x8000
        let a = bits & 0x7FFF_FFFF
        let overflow: UInt32 = a > 0x7F80_0000 ? 0x7E00 | ((a &>> 13) & 0x3FF) : 0x7C00
        let sub = (Float(bitPattern: a) + Float(bitPattern: denormMagic)).bitPattern &- denormMagic
        let normal = (a &- (112 &<< 23) &+ 0xFFF &+ ((a &>> 13) & 1)) &>> 13
        let h = a >= 0x4780_0000 ? overflow : (a < 0x3880_0000 ? sub : normal)
        dst[i] = UInt16(truncatingIfNeeded: h | sign)
    }
}

/// Widens `count` bfloat16 values (as bit patterns) to Float; exact.
public func convertBF16ToF32(_ src: UnsafePointer<UInt16>, _ dst: UnsafeMutablePointer<Float>, count: Int) {
    for i in 0..<count { dst[i] = Float(bitPattern: UInt32(src[i]) &<< 16) }
}

/// Narrows `count` Floats to bfloat16 with round-to-nearest-even; NaN stays NaN (quiet), Inf stays Inf.
public func convertF32ToBF16(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<UInt16>, count: Int) {
    for i in 0..<count {
        let bits = src[i].bitPattern
        let rounded = (bits &+ 0x7FFF &+ ((bits &>> 16) & 1)) &>> 16
        let isNaN = (bits & 0x7FFF_FFFF) > 0x7F80_0000
        dst[i] = UInt16(truncatingIfNeeded: isNaN ? (bits &>> 16) | 0x40 : rounded)
    }
}
