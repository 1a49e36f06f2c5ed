// Half: element conversions between stored dtypes and Float32, 16 lanes at a time.
//
// Sources come straight from a mapped file at arbitrary byte offsets, so every load is unaligned.
// BF16 is the top half of an F32 bit pattern (rounded to nearest even on the way down, NaN kept quiet).

enum Half {
    /// dst[i] = Float(src[i]) for `count` elements of `dtype` starting at `src`.
    static func toFloat(_ dtype: DType, _ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, count: Int) {
        switch dtype {
        case .f32: UnsafeMutableRawPointer(dst).copyMemory(from: src, byteCount: count * 4)
        case .f16: f16ToF32(src, dst, count)
        case .bf16: bf16ToF32(src, dst, count)
        case .f64: convert(src, dst, count, Double.self) { Float($0) }
        case .i64: convert(src, dst, count, Int64.self) { Float($0) }
        case .i32: convert(src, dst, count, Int32.self) { Float($0) }
        case .i16: convert(src, dst, count, Int16.self) { Float($0) }
        case .i8: convert(src, dst, count, Int8.self) { Float($0) }
        case .u8: convert(src, dst, count, UInt8.self) { Float($0) }
        case .bool: convert(src, dst, count, UInt8.self) { $0 == 0 ? 0 : 1 }
        }
    }

    @inline(__always)
    private static func convert<T>(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ count: Int,
                                   _ type: T.Type, _ f: (T) -> Float) {
        let size = MemoryLayout<T>.size
        for i in 0..<count { dst[i] = f(src.loadUnaligned(fromByteOffset: i * size, as: T.self)) }
    }

    // F16 <-> F32 by integer bit manipulation (F. Giesen, "half to float done quic", float_to_half_fast3_rtne).
    // Swift's Float16 would compile to AVX512-FP16 instructions under `-target-cpu sapphirerapids`,
    // and the CPUs this runs on (KVM guests of Emerald Rapids) do not expose AVX512-FP16: SIGILL.

    // The bulk loops below are scalar code written without branches; LLVM vectorises them
    // (explicit SIMD16<UInt16> -> SIMD16<UInt32> widening compiles to a call per vector).

    /// One F16 bit pattern -> F32 bit pattern.
    @inline(__always)
    static func f32Bits(fromF16 h: UInt32) -> UInt32 {
        let shiftedExponent: UInt32 = 0x7C00 << 13
        let o = (h & 0x7FFF) &<< 13
        let exponent = o & shiftedExponent
        let normal = o &+ ((127 - 15) << 23)
        let infNaN = normal &+ ((128 - 16) << 23)
        let denormal = (Float(bitPattern: normal &+ (1 << 23)) - Float(bitPattern: 113 << 23)).bitPattern
        let magnitude = exponent == shiftedExponent ? infNaN : (exponent == 0 ? denormal : normal)
        return magnitude | ((h & 0x8000) &<< 16)
    }

    /// One F32 bit pattern -> F16 bit pattern, round to nearest even.
    @inline(__always)
    static func f16Bits(fromF32 bits: UInt32) -> UInt16 {
        let sign = bits & 0x8000_0000
        let f = bits ^ sign
        let denormMagic: UInt32 = ((127 - 15) + (23 - 10) + 1) << 23
        let overflow: UInt32 = f > 255 << 23 ? 0x7E00 : 0x7C00
        let small = (Float(bitPattern: f) + Float(bitPattern: denormMagic)).bitPattern &- denormMagic
        let rebias = UInt32(bitPattern: Int32(15 - 127) << 23) &+ 0xFFF
        let normal = (f &+ rebias &+ ((f &>> 13) & 1)) &>> 13
        let magnitude = f >= (127 + 16) << 23 ? overflow : (f < 113 << 23 ? small : normal)
        return UInt16(truncatingIfNeeded: magnitude | (sign &>> 16))
    }

    static func f16ToF32(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ count: Int) {
        let out = UnsafeMutableRawPointer(dst).assumingMemoryBound(to: UInt32.self)
        for i in 0..<count {
            out[i] = f32Bits(fromF16: UInt32(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
        }
    }

    static func bf16ToF32(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ count: Int) {
        let out = UnsafeMutableRawPointer(dst).assumingMemoryBound(to: UInt32.self)
        for i in 0..<count {
            out[i] = UInt32(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) &<< 16
        }
    }

    /// F32 -> F16, round to nearest even (IEEE conversion).
    static func f32ToF16(_ src: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, _ count: Int) {
        let out = dst.assumingMemoryBound(to: UInt16.self)
        for i in 0..<count { out[i] = f16Bits(fromF32: src[i].bitPattern) }
    }

    /// One F16 bit pattern as a Float.
    static func float(fromF16 bits: UInt16) -> Float { Float(bitPattern: f32Bits(fromF16: UInt32(bits))) }

    /// One Float as an F16 bit pattern (round to nearest even).
    static func f16Bits(_ x: Float) -> UInt16 { f16Bits(fromF32: x.bitPattern) }

    /// One F32 -> BF16 conversion: round to nearest even; NaN stays a (quiet) NaN.
    @inline(__always)
    static func bf16Bits(_ x: Float) -> UInt16 {
        let b = x.bitPattern
        if x.isNaN { return UInt16(truncatingIfNeeded: b >> 16) | 0x0040 }
        return UInt16(truncatingIfNeeded: (b &+ 0x7FFF &+ ((b >> 16) & 1)) >> 16)
    }

    static func f32ToBF16(_ src: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, _ count: Int) {
        var i = 0
        while i + 16 <= count {
            let f = UnsafeRawPointer(src + i).loadUnaligned(as: SIMD16<Float>.self)
            let b = unsafeBitCast(f, to: SIMD16<UInt32>.self)
            let rounded = (b &+ 0x7FFF &+ ((b &>> 16) & 1)) &>> 16
            let quietNaN = (b &>> 16) | 0x0040
            let bits = rounded.replacing(with: quietNaN, where: f .!= f)
            dst.storeBytes(of: SIMD16<UInt16>(truncatingIfNeeded: bits), toByteOffset: 2 * i, as: SIMD16<UInt16>.self)
            i += 16
        }
        while i < count {
            dst.storeBytes(of: bf16Bits(src[i]), toByteOffset: 2 * i, as: UInt16.self)
            i += 1
        }
    }
}
