// Conversion: stored elements of any dtype -> Float32, reading straight from a mapped file.
//
// F16 and BF16 use TensorCore's vectorised converters (HalfPrecision.swift). Those take aligned
// UInt16 pointers; a file whose header length is odd legally puts 16-bit data at odd addresses, and
// such a source is copied through an aligned scratch block first. Every other load is unaligned.
import TensorCore

enum Conversion {
    /// dst[i] = Float(src[i]) for `count` elements of `dtype` starting at `src`.
    static func toFloat(_ dtype: DType, _ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, count: Int) {
        switch dtype {
        case .f32: UnsafeMutableRawPointer(dst).copyMemory(from: src, byteCount: count * 4)
        case .f16: sixteenBit(src, dst, count) { convertF16ToF32($0, $1, count: $2) }
        case .bf16: sixteenBit(src, dst, count) { convertBF16ToF32($0, $1, count: $2) }
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

    private static func sixteenBit(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ count: Int,
                                   _ widen: (UnsafePointer<UInt16>, UnsafeMutablePointer<Float>, Int) -> Void) {
        if Int(bitPattern: src) % 2 == 0 {
            return widen(src.assumingMemoryBound(to: UInt16.self), dst, count)
        }
        let block = 4096
        withUnsafeTemporaryAllocation(of: UInt16.self, capacity: block) { scratch in
            var i = 0
            while i < count {
                let n = min(block, count - i)
                UnsafeMutableRawPointer(scratch.baseAddress!).copyMemory(from: src + 2 * i, byteCount: 2 * n)
                widen(scratch.baseAddress!, dst + i, n)
                i += n
            }
        }
    }
}
