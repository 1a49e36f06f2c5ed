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

    typealias V = SIMD16<UInt32>

    /// F16 bit patterns -> F32 bit patterns.
    @inline(__always)
    static func f16ToF32Bits(_ h: V) -> V {
        let shiftedExponent = V(repeating: 0x7C00 << 13)
        var o = (h & 0x7FFF) &<< 13
        let exponent = o & shiftedExponent
        o &+= V(repeating: (127 - 15) << 23)
        let infNaN = o &+ V(repeating: (128 - 16) << 23)
        let denormal = unsafeBitCast(unsafeBitCast(o &+ V(repeating: 1 << 23), to: SIMD16<Float>.self)
                                     - SIMD16<Float>(repeating: Float(bitPattern: 113 << 23)), to: V.self)
        o.replace(with: infNaN, where: exponent .== shiftedExponent)
        o.replace(with: denormal, where: exponent .== 0)
        return o | ((h & 0x8000) &<< 16)
    }

    /// F32 bit patterns -> F16 bit patterns (in the low 16 bits), round to nearest even.
    @inline(__always)
    static func f32ToF16Bits(_ bits: V) -> V {
        let sign = bits & 0x8000_0000
        let f = bits ^ sign
        let f16Max = V(repeating: (127 + 16) << 23)
        let denormMagic = V(repeating: ((127 - 15) + (23 - 10) + 1) << 23)
        let overflow = V(repeating: 0x7C00).replacing(with: 0x7E00, where: f .> V(repeating: 255 << 23))
        let small = unsafeBitCast(unsafeBitCast(f, to: SIMD16<Float>.self) + unsafeBitCast(denormMagic, to: SIMD16<Float>.self),
                                  to: V.self) &- denormMagic
        let mantissaOdd = (f &>> 13) & 1
        let rebias = UInt32(bitPattern: Int32(15 - 127) << 23) &+ 0xFFF
        let normal = (f &+ V(repeating: rebias) &+ mantissaOdd) &>> 13
        var o = normal
        o.replace(with: small, where: f .< V(repeating: 113 << 23))
        o.replace(with: overflow, where: f .>= f16Max)
        return o | (sign &>> 16)
    }

    static func f16ToF32(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ count: Int) {
        var i = 0
        while i + 16 <= count {
            let h = SIMD16<UInt32>(truncatingIfNeeded: src.loadUnaligned(fromByteOffset: 2 * i, as: SIMD16<UInt16>.self))
            UnsafeMutableRawPointer(dst + i).storeBytes(of: f16ToF32Bits(h), as: SIMD16<UInt32>.self)
            i += 16
        }
        while i < count {
            let h = V(repeating: UInt32(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
            dst[i] = Float(bitPattern: f16ToF32Bits(h)[0])
            i += 1
        }
    }

    static func bf16ToF32(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ count: Int) {
        var i = 0
        while i + 16 <= count {
            let h = src.loadUnaligned(fromByteOffset: 2 * i, as: SIMD16<UInt16>.self)
            let bits = SIMD16<UInt32>(truncatingIfNeeded: h) &<< 16
            UnsafeMutableRawPointer(dst + i).storeBytes(of: bits, as: SIMD16<UInt32>.self)
            i += 16
        }
        while i < count {
            dst[i] = Float(bitPattern: UInt32(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16)
            i += 1
        }
    }

    /// F32 -> F16, round to nearest even (IEEE conversion).
    static func f32ToF16(_ src: UnsafePointer<Float>, _ dst: UnsafeMutableRawPointer, _ count: Int) {
        var i = 0
        while i + 16 <= count {
            let f = UnsafeRawPointer(src + i).loadUnaligned(as: SIMD16<UInt32>.self)
            dst.storeBytes(of: SIMD16<UInt16>(truncatingIfNeeded: f32ToF16Bits(f)), toByteOffset: 2 * i, as: SIMD16<UInt16>.self)
            i += 16
        }
        while i < count {
            let h = f32ToF16Bits(V(repeating: src[i].bitPattern))[0]
            dst.storeBytes(of: UInt16(truncatingIfNeeded: h), toByteOffset: 2 * i, as: UInt16.self)
            i += 1
        }
    }

    /// One F16 bit pattern as a Float.
    static func float(fromF16 bits: UInt16) -> Float {
        Float(bitPattern: f16ToF32Bits(V(repeating: UInt32(bits)))[0])
    }

    /// One Float as an F16 bit pattern (round to nearest even).
    static func f16Bits(_ x: Float) -> UInt16 {
        UInt16(truncatingIfNeeded: f32ToF16Bits(V(repeating: x.bitPattern))[0])
    }

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
