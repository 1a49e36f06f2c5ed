// 4-bit blockwise quantization in bitsandbytes' exact format (QLoRA's NF4, and FP4).
//
// This implementation matches bitsandbytes 0.50 on the CPU:
// `bitsandbytes.functional.quantize_4bit(A, blocksize=64, quant_type=…, compress_statistics=…)` and
// `dequantize_4bit`. The weights are quantized over their flat row-major order in blocks of `blockSize`:
//   absmax_b = max |x| over the block;  q = the code-book entry nearest to x / absmax_b
//   (bucketize over the sorted code book's midpoints, ties to the lower entry);
//   two codes per byte, the first weight in the high nibble; an odd count pads one 0-code nibble.
// Double quantization (`compress_statistics=True`): offset = mean(absmax); absmax − offset is quantized
// 8-bit in blocks of 256 with the signed dynamic map (bitsandbytes' `quantize_blockwise`, CPU kernel:
// x / absmax₂, the nearest map entry, ties to the lower one), keeping one F32 absmax₂ per 256 blocks.
// Dequantization: scale_b = map[q_b] · absmax₂ + offset (or absmax_b), weight = code[nibble] · scale_b.
import Foundation
import TensorBase

/// A 4-bit data type of bitsandbytes.
public enum FourBitType: String, CaseIterable, Sendable {
    /// NormalFloat4 (QLoRA): quantiles of N(0, 1), sorted, with an exact zero.
    case nf4
    /// 1 sign, 2 exponent and 1 mantissa bit, in bit-pattern order, normalised to [-1, 1]. Code 8 (−0)
    /// decodes to +0, as bitsandbytes' CPU kernel returns it.
    case fp4

    /// The 16 code-book values, indexed by the 4-bit code (bitsandbytes' `get_4bit_type`).
    public var code: [Float] {
        switch self {
        case .nf4:
            return [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
                    -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
                    0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
                    0.7229568362236023, 1.0]
        case .fp4:
            let raw: [Float] = [0, 0.0625, 8, 12, 4, 6, 2, 3, 0, -0.0625, -8, -12, -4, -6, -2, -3]
            return raw.map { $0 / 12 }
        }
    }

    /// Midpoints between consecutive sorted code values and, per bucket, its code (bucket i holds
    /// `bounds[i-1] < x <= bounds[i]`, torch.bucketize's rule); the sort is stable, so FP4's +0 precedes −0.
    var buckets: (bounds: [Float], codes: [UInt8]) {
        let code = self.code
        let order = code.indices.sorted { code[$0] < code[$1] || (code[$0] == code[$1] && $0 < $1) }
        let bounds = (0..<15).map { (code[order[$0]] + code[order[$0 + 1]]) / 2 }
        return (bounds, order.map { UInt8($0) })
    }
}

/// Errors of the 4-bit format: what is wrong, and with which tensor.
public enum QuantizationError: Error, CustomStringConvertible, Equatable {
    case invalid(String)

    public var description: String {
        switch self {
        case .invalid(let m): return m
        }
    }
}

/// bitsandbytes' signed 8-bit dynamic map (`create_dynamic_map(signed=True)`), 256 sorted values in [-1, 1].
/// The values are torch's float32 results (its vectorized `linspace` rounds differently from the textbook
/// formula), so they are listed as bit patterns, printed by
/// `bitsandbytes.functional.create_dynamic_map().view(torch.int32)`; FourBitFormatTests checks them.
public enum DynamicMap {
    public static let signed: [Float] = bits.map { Float(bitPattern: $0) }

    private static let bits: [UInt32] = [
        0xBF7E3333, 0xBF7A999A, 0xBF770000, 0xBF736666, 0xBF6FCCCD, 0xBF6C3333, 0xBF68999A, 0xBF650000,
        0xBF616666, 0xBF5DCCCD, 0xBF5A3333, 0xBF56999A, 0xBF530000, 0xBF4F6666, 0xBF4BCCCD, 0xBF483333,
        0xBF44999A, 0xBF410000, 0xBF3D6666, 0xBF39CCCD, 0xBF363334, 0xBF32999A, 0xBF2F0000, 0xBF2B6666,
        0xBF27CCCD, 0xBF243334, 0xBF20999A, 0xBF1D0000, 0xBF196666, 0xBF15CCCD, 0xBF123334, 0xBF0E999A,
        0xBF0B0000, 0xBF076666, 0xBF03CCCC, 0xBF003333, 0xBEF93332, 0xBEF20000, 0xBEEACCCC, 0xBEE3999A,
        0xBEDC6666, 0xBED53333, 0xBECE0000, 0xBEC6CCCC, 0xBEBF999A, 0xBEB86666, 0xBEB13333, 0xBEAA0000,
        0xBEA2CCCC, 0xBE9B999A, 0xBE946666, 0xBE8D3334, 0xBE860000, 0xBE7D9999, 0xBE6F3333, 0xBE60CCCD,
        0xBE526666, 0xBE440000, 0xBE35999A, 0xBE273333, 0xBE18CCCD, 0xBE0A6666, 0xBDF80000, 0xBDDB3334,
        0xBDC9EB85, 0xBDC428F7, 0xBDBE6667, 0xBDB8A3D7, 0xBDB2E148, 0xBDAD1EB8, 0xBDA75C2A, 0xBDA1999A,
        0xBD9BD70A, 0xBD96147B, 0xBD9051EB, 0xBD8A8F5D, 0xBD84CCCD, 0xBD7E147B, 0xBD728F5D, 0xBD670A3D,
        0xBD5B851F, 0xBD500000, 0xBD447AE1, 0xBD38F5C3, 0xBD2D70A3, 0xBD21EB85, 0xBD166667, 0xBD0AE148,
        0xBCFEB852, 0xBCE7AE15, 0xBCD0A3D7, 0xBCB9999A, 0xBCA28F5D, 0xBC8B851F, 0xBC68F5C3, 0xBC3AE148,
        0xBC1F3B64, 0xBC160418, 0xBC0CCCCD, 0xBC039581, 0xBBF4BC6A, 0xBBE24DD3, 0xBBCFDF3B, 0xBBBD70A4,
        0xBBAB020D, 0xBB989374, 0xBB8624DD, 0xBB676C8A, 0xBB428F5C, 0xBB1DB22D, 0xBAF1A9FC, 0xBAA7EF9D,
        0xBA7765FF, 0xBA59E83E, 0xBA3C6A80, 0xBA1EECC1, 0xBA016F01, 0xB9C7E283, 0xB98CE705, 0xB923D70B,
        0xB8BA1F4B, 0xB88AEFB3, 0xB8378034, 0xB7B24206, 0xB70205FF, 0xB65A1A94, 0xB513A3B7, 0x00000000,
        0x3513A3B7, 0x365A1A94, 0x370205FF, 0x37B24206, 0x38378034, 0x388AEFB3, 0x38BA1F4B, 0x3923D70B,
        0x398CE705, 0x39C7E283, 0x3A016F01, 0x3A1EECC1, 0x3A3C6A80, 0x3A59E83E, 0x3A7765FF, 0x3AA7EF9D,
        0x3AF1A9FC, 0x3B1DB22D, 0x3B428F5C, 0x3B676C8A, 0x3B8624DD, 0x3B989374, 0x3BAB020D, 0x3BBD70A4,
        0x3BCFDF3B, 0x3BE24DD3, 0x3BF4BC6A, 0x3C039581, 0x3C0CCCCD, 0x3C160418, 0x3C1F3B64, 0x3C3AE148,
        0x3C68F5C3, 0x3C8B851F, 0x3CA28F5D, 0x3CB9999A, 0x3CD0A3D7, 0x3CE7AE15, 0x3CFEB852, 0x3D0AE148,
        0x3D166667, 0x3D21EB85, 0x3D2D70A3, 0x3D38F5C3, 0x3D447AE1, 0x3D500000, 0x3D5B851F, 0x3D670A3D,
        0x3D728F5D, 0x3D7E147B, 0x3D84CCCD, 0x3D8A8F5D, 0x3D9051EB, 0x3D96147B, 0x3D9BD70A, 0x3DA1999A,
        0x3DA75C2A, 0x3DAD1EB8, 0x3DB2E148, 0x3DB8A3D7, 0x3DBE6667, 0x3DC428F7, 0x3DC9EB85, 0x3DDB3334,
        0x3DF80000, 0x3E0A6666, 0x3E18CCCD, 0x3E273333, 0x3E35999A, 0x3E440000, 0x3E526666, 0x3E60CCCD,
        0x3E6F3333, 0x3E7D9999, 0x3E860000, 0x3E8D3334, 0x3E946666, 0x3E9B999A, 0x3EA2CCCC, 0x3EAA0000,
        0x3EB13333, 0x3EB86666, 0x3EBF999A, 0x3EC6CCCC, 0x3ECE0000, 0x3ED53333, 0x3EDC6666, 0x3EE3999A,
        0x3EEACCCC, 0x3EF20000, 0x3EF93332, 0x3F003333, 0x3F03CCCC, 0x3F076666, 0x3F0B0000, 0x3F0E999A,
        0x3F123334, 0x3F15CCCD, 0x3F196666, 0x3F1D0000, 0x3F20999A, 0x3F243334, 0x3F27CCCD, 0x3F2B6666,
        0x3F2F0000, 0x3F32999A, 0x3F363334, 0x3F39CCCD, 0x3F3D6666, 0x3F410000, 0x3F44999A, 0x3F483333,
        0x3F4BCCCD, 0x3F4F6666, 0x3F530000, 0x3F56999A, 0x3F5A3333, 0x3F5DCCCD, 0x3F616666, 0x3F650000,
        0x3F68999A, 0x3F6C3333, 0x3F6FCCCD, 0x3F736666, 0x3F770000, 0x3F7A999A, 0x3F7E3333, 0x3F800000
    ]
}

/// torch's float32 `sum` of a contiguous vector as its CPU kernel computes it on one thread (SumKernel.cpp:
/// 8-lane vectors, 4 interleaved accumulators, cascade levels of 2^max(4, ⌈log2 n⌉/4) steps, then the
/// scalar tail and the lanes in order). Used for the double-quantization offset `absmax.mean()` =
/// sum / n, which it reproduces exactly up to 32768 blocks (torch splits longer sums over threads).
func torchFloatSum(_ x: [Float]) -> Float {
    let lanes = 8, n = x.count, vectors = n / lanes
    let groups = vectors / 4
    let ceilLog2 = groups > 1 ? Int.bitWidth - (groups - 1).leadingZeroBitCount : 0
    let levelPower = max(4, ceilLog2 / 4), levelStep = 1 << levelPower, levelMask = levelStep - 1
    var acc = [[SIMD8<Float>]](repeating: [SIMD8<Float>](repeating: .zero, count: 4), count: 4)
    func vector(_ v: Int) -> SIMD8<Float> { SIMD8<Float>(x[(v * lanes)..<(v * lanes + lanes)]) }
    var i = 0
    while i + levelStep <= groups {
        for _ in 0..<levelStep {
            for k in 0..<4 { acc[0][k] += vector(i * 4 + k) }
            i += 1
        }
        for j in 1..<4 {
            for k in 0..<4 { acc[j][k] += acc[j - 1][k]; acc[j - 1][k] = .zero }
            if i & (levelMask << (j * levelPower)) != 0 { break }
        }
    }
    while i < groups {
        for k in 0..<4 { acc[0][k] += vector(i * 4 + k) }
        i += 1
    }
    for j in 1..<4 { for k in 0..<4 { acc[0][k] += acc[j][k] } }
    var partial = acc[0]
    for v in (groups * 4)..<vectors { partial[0] += vector(v) }
    for k in 1..<4 { partial[0] += partial[k] }
    var total: Float = 0
    for t in (vectors * lanes)..<n { total += x[t] }
    for l in 0..<lanes { total += partial[0][l] }
    return total
}

/// The double-quantized absmax of a 4-bit tensor (bitsandbytes' nested QuantState).
public struct NestedAbsmax: Equatable, Sendable {
    /// One 8-bit code per 4-bit block: (absmax − offset) quantized with `map`.
    public var codes: [UInt8]
    /// One F32 absmax per `blockSize` codes.
    public var absmax: [Float]
    public var offset: Float
    public var blockSize: Int
    /// The 256-entry map (`nested_quant_map`).
    public var map: [Float]

    public init(codes: [UInt8], absmax: [Float], offset: Float, blockSize: Int, map: [Float]) {
        self.codes = codes; self.absmax = absmax; self.offset = offset; self.blockSize = blockSize; self.map = map
    }

    /// The F32 absmax of every 4-bit block: map[code] · absmax₂ + offset.
    public func dequantized() -> [Float] {
        codes.enumerated().map { b, q in map[Int(q)] * absmax[b / blockSize] + offset }
    }
}

/// A tensor stored in bitsandbytes' 4-bit blockwise format, with what its QuantState carries.
public final class FourBitTensor: @unchecked Sendable {
    public enum Absmax: Equatable, Sendable {
        case plain([Float])
        case nested(NestedAbsmax)
    }

    public let type: FourBitType
    /// The original tensor's shape (its checkpoint layout).
    public let shape: [Int]
    public let blockSize: Int
    /// ⌈count/2⌉ bytes, two codes each, the first weight in the high nibble.
    public let packed: [UInt8]
    public let absmax: Absmax
    /// The F32 absmax of every block, as dequantization uses it.
    public let scales: [Float]
    /// The code book (16 values).
    public let code: [Float]

    public var count: Int { shape.reduce(1, *) }
    public var blockCount: Int { (count + blockSize - 1) / blockSize }

    /// Bytes this tensor occupies: codes, absmax and the nested state.
    public var storageBytes: Int {
        switch absmax {
        case .plain(let a): return packed.count + 4 * a.count
        case .nested(let n): return packed.count + n.codes.count + 4 * n.absmax.count + 4 * n.map.count + 4
        }
    }

    /// Checks every size against `shape` and `blockSize`; `name` goes into the error.
    public init(type: FourBitType, shape: [Int], blockSize: Int, packed: [UInt8], absmax: Absmax,
                name: String = "tensor") throws {
        guard FourBitTensor.blockSizes.contains(blockSize) else {
            throw QuantizationError.invalid("\(name): 4-bit block size \(blockSize) is not one bitsandbytes produces "
                + "(\(FourBitTensor.blockSizes.map(String.init).joined(separator: ", ")))")
        }
        let count = shape.reduce(1, *), blocks = (count + blockSize - 1) / blockSize
        guard packed.count == (count + 1) / 2 else {
            throw QuantizationError.invalid("\(name): \(packed.count) bytes of 4-bit codes for shape \(shape) "
                + "(expected \((count + 1) / 2))")
        }
        switch absmax {
        case .plain(let a):
            guard a.count == blocks else {
                throw QuantizationError.invalid("\(name): \(a.count) absmax values for \(blocks) blocks of \(blockSize)")
            }
            scales = a
        case .nested(let n):
            guard n.codes.count == blocks else {
                throw QuantizationError.invalid("\(name): \(n.codes.count) absmax codes for \(blocks) blocks of \(blockSize)")
            }
            guard n.blockSize > 0, n.absmax.count == (blocks + n.blockSize - 1) / n.blockSize else {
                throw QuantizationError.invalid("\(name): \(n.absmax.count) nested absmax values for \(blocks) blocks "
                    + "in nested blocks of \(n.blockSize)")
            }
            guard n.map.count == 256 else {
                throw QuantizationError.invalid("\(name): nested quant map has \(n.map.count) entries (expected 256)")
            }
            scales = n.dequantized()
        }
        self.type = type
        self.shape = shape
        self.blockSize = blockSize
        self.packed = packed
        self.absmax = absmax
        self.code = type.code
    }

    /// Block sizes bitsandbytes' quantize_4bit accepts.
    public static let blockSizes = [32, 64, 128, 256, 512, 1024, 2048, 4096]

    /// bitsandbytes' `quantize_4bit(t, blocksize, quant_type, compress_statistics)` on the CPU.
    public static func quantize(_ t: Tensor, type: FourBitType, blockSize: Int = 64,
                                compressStatistics: Bool = true) throws -> FourBitTensor {
        guard blockSizes.contains(blockSize) else {
            throw QuantizationError.invalid("4-bit block size \(blockSize) is not one bitsandbytes produces")
        }
        let n = t.count, blocks = (n + blockSize - 1) / blockSize
        var packed = [UInt8](repeating: 0, count: (n + 1) / 2)
        var absmax = [Float](repeating: 0, count: blocks)
        let (bounds, codes) = type.buckets
        t.withUnsafeBufferPointer { x in
            packed.withUnsafeMutableBufferPointer { out in
                absmax.withUnsafeMutableBufferPointer { am in
                    let workers = Parallel.workers(for: n, minWorkPerThread: 1 << 18)
                    // Chunks of whole byte pairs: blocks are even-sized, so a block never splits a byte.
                    Parallel.forChunks(count: blocks, workers: workers) { _, range in
                        for b in range {
                            quantizeBlock(x.baseAddress!, n: n, block: b, blockSize: blockSize, bounds: bounds,
                                          codes: codes, out: out.baseAddress!, absmax: am.baseAddress!)
                        }
                    }
                }
            }
        }
        let state: Absmax = compressStatistics ? .nested(nestedQuantize(absmax)) : .plain(absmax)
        return try FourBitTensor(type: type, shape: t.shape, blockSize: blockSize, packed: packed, absmax: state)
    }

    /// One block: torch's default quantize_4bit kernel (x · (1/absmax) for full blocks, x / absmax for the
    /// last partial one, clamped to [-1, 1], then bucketized).
    private static func quantizeBlock(_ x: UnsafePointer<Float>, n: Int, block b: Int, blockSize: Int, bounds: [Float],
                                      codes: [UInt8], out: UnsafeMutablePointer<UInt8>, absmax: UnsafeMutablePointer<Float>) {
        let start = b * blockSize, end = min(n, start + blockSize)
        var m: Float = 0
        for i in start..<end { m = max(m, abs(x[i])) }
        absmax[b] = m
        let safe = max(m, 1e-38)
        let full = end - start == blockSize
        let reciprocal = 1 / safe
        for i in stride(from: start, to: end, by: 2) {
            let hi = bucket(full ? x[i] * reciprocal : x[i] / safe, bounds, codes)
            let lo = i + 1 < end ? bucket(full ? x[i + 1] * reciprocal : x[i + 1] / safe, bounds, codes)
                                 : bucket(0, bounds, codes)
            out[i >> 1] = hi << 4 | lo
        }
    }

    /// torch.bucketize(clamp(v, -1, 1), bounds) mapped through the code order.
    @inline(__always)
    private static func bucket(_ v: Float, _ bounds: [Float], _ codes: [UInt8]) -> UInt8 {
        let x = min(max(v, -1), 1)
        var lo = 0, hi = bounds.count            // first bound >= x
        while lo < hi {
            let mid = (lo + hi) / 2
            if bounds[mid] < x { lo = mid + 1 } else { hi = mid }
        }
        return codes[lo]
    }

    /// bitsandbytes' nested quantization of the absmax: offset = mean, then `quantize_blockwise(absmax −
    /// offset, blocksize=256)` with the dynamic map (the CPU kernel's rule).
    static func nestedQuantize(_ absmax: [Float]) -> NestedAbsmax {
        let blockSize = 256
        let offset = torchFloatSum(absmax) / Float(max(absmax.count, 1))
        let shifted = absmax.map { $0 - offset }
        let map = DynamicMap.signed
        var search = map
        search[0] = -1                               // the kernel's search treats the map as starting at -1
        var codes = [UInt8](repeating: 0, count: shifted.count)
        var nested: [Float] = []
        var start = 0
        while start < shifted.count {
            let end = min(shifted.count, start + blockSize)
            var m = -Float.greatestFiniteMagnitude
            for i in start..<end { m = max(m, abs(shifted[i])) }
            nested.append(m)
            for i in start..<end {
                let v = shifted[i] / m
                var lo = 0, hi = 255                  // largest index with search[index] <= v
                while lo < hi {
                    let mid = (lo + hi + 1) / 2
                    if search[mid] <= v { lo = mid } else { hi = mid - 1 }
                }
                var idx = lo
                if idx < 255 && abs(v - search[idx + 1]) < abs(v - search[idx]) { idx += 1 }
                codes[i] = UInt8(idx)
            }
            start = end
        }
        return NestedAbsmax(codes: codes, absmax: nested, offset: offset, blockSize: blockSize, map: map)
    }

    /// bitsandbytes' `dequantize_4bit`: the F32 tensor of `shape`.
    public func dequantized() -> Tensor {
        Tensor(shape: shape) { out in
            packed.withUnsafeBufferPointer { p in
                scales.withUnsafeBufferPointer { s in
                    code.withUnsafeBufferPointer { c in
                        dequantizeFourBit(packed: p.baseAddress!, scales: s.baseAddress!, code: c.baseAddress!,
                                          blockSize: blockSize, count: count, out: out.baseAddress!)
                    }
                }
            }
        }
    }

    /// `x [rows, in] · Wᵀ` for this tensor as a Linear weight `[out, in]` → `[rows, out]`; with `bias`, every
    /// row starts as the bias and the product accumulates onto it.
    public func linearForward(_ x: Tensor, bias: Tensor?) throws -> Tensor {
        guard shape.count == 2, x.rank == 2, x.shape[1] == shape[1] else {
            throw TensorError.shapeMismatch("4-bit linear: input \(x.shape) for weight \(shape) ([out, in])")
        }
        let (rows, k, n) = (x.shape[0], shape[1], shape[0])
        return Tensor(shape: [rows, n]) { out in
            if let bias {
                bias.withUnsafeBufferPointer { pb in
                    for r in 0..<rows { (out.baseAddress! + r * n).update(from: pb.baseAddress!, count: n) }
                }
            }
            x.withUnsafeBufferPointer { px in
                product(a: px.baseAddress!, m: rows, n: n, k: k, transposed: true, c: out.baseAddress!,
                        accumulate: bias != nil)
            }
        }
    }

    /// `g [rows, out] · W` for this tensor as a Linear weight `[out, in]` → `[rows, in]` (the input gradient).
    public func linearInputGradient(_ g: Tensor) throws -> Tensor {
        guard shape.count == 2, g.rank == 2, g.shape[1] == shape[0] else {
            throw TensorError.shapeMismatch("4-bit linear backward: gradient \(g.shape) for weight \(shape)")
        }
        let (rows, k, n) = (g.shape[0], shape[0], shape[1])
        return Tensor(shape: [rows, n]) { out in
            g.withUnsafeBufferPointer { pg in
                product(a: pg.baseAddress!, m: rows, n: n, k: k, transposed: false, c: out.baseAddress!,
                        accumulate: false)
            }
        }
    }

    /// This tensor as a convolution weight `[kh, kw, Cin, Cout]` (quantized in that order): `x [N, H, W, Cin]`
    /// convolved (+ bias) → `[N, Ho, Wo, Cout]`, the weight decoded sliver by sliver inside the convolution.
    public func conv2dForward(_ x: Tensor, bias: Tensor?, stride: Int, padding: Int) throws -> Tensor {
        try withStorage { p, s, c in
            try quantizedConv2d(x, packed: p, scales: s, code: c, blockSize: blockSize, weightShape: shape, bias: bias,
                                stride: stride, padding: padding)
        }
    }

    /// The input gradient of `conv2dForward` for the output gradient `g`; `inputShape` is x's shape.
    public func conv2dInputGradient(_ g: Tensor, inputShape: [Int], stride: Int, padding: Int) throws -> Tensor {
        try withStorage { p, s, c in
            try quantizedConv2dBackwardInput(g, packed: p, scales: s, code: c, blockSize: blockSize, weightShape: shape,
                                             inputShape: inputShape, stride: stride, padding: padding)
        }
    }

    private func withStorage<R>(_ body: (UnsafePointer<UInt8>, UnsafePointer<Float>, UnsafePointer<Float>) throws -> R) rethrows -> R {
        try packed.withUnsafeBufferPointer { p in
            try scales.withUnsafeBufferPointer { s in
                try code.withUnsafeBufferPointer { c in try body(p.baseAddress!, s.baseAddress!, c.baseAddress!) }
            }
        }
    }

    private func product(a: UnsafePointer<Float>, m: Int, n: Int, k: Int, transposed: Bool,
                         c: UnsafeMutablePointer<Float>, accumulate: Bool) {
        packed.withUnsafeBufferPointer { p in
            scales.withUnsafeBufferPointer { s in
                code.withUnsafeBufferPointer { cb in
                    dequantizingSGEMM(m: m, n: n, k: k, a: a, lda: k, packed: p.baseAddress!, scales: s.baseAddress!,
                                      code: cb.baseAddress!, blockSize: blockSize, transposedWeight: transposed,
                                      c: c, ldc: n, accumulate: accumulate)
                }
            }
        }
    }
}
