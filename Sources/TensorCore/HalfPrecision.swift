// HalfPrecision: bulk F16 / BF16 <-> F32 conversion on raw pointers (safetensors storage types).
//
// IEEE binary16 goes through the hardware conversions (`vcvtph2ps` / `vcvtps2ph`, round-to-nearest-even,
// exact for subnormals, Inf and NaN). bfloat16 is the top half of a binary32: widening is a shift, narrowing
// rounds to nearest-even on the integer bits and keeps NaN a (quiet) NaN. The loops vectorise to zmm code.

/// Widens `count` IEEE half-precision values (as bit patterns) to Float.
public func convertF16ToF32(_ src: UnsafePointer<UInt16>, _ dst: UnsafeMutablePointer<Float>, count: Int) {
    for i in 0..<count { dst[i] = Float(Float16(bitPattern: src[i])) }
}

/// Narrows `count` Floats to IEEE half precision (round-to-nearest-even; overflow gives ±Inf).
public func convertF32ToF16(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<UInt16>, count: Int) {
    for i in 0..<count { dst[i] = Float16(src[i]).bitPattern }
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
