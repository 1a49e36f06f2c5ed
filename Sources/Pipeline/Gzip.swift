// Gzip: decompression of a gzip file (RFC 1952) holding DEFLATE data (RFC 1951), for the package's own
// compressed resources. Canonical Huffman codes are decoded through a 9-bit lookup table with a per-length
// walk for longer codes; the CRC-32 and size of the trailer are checked.

import Foundation

enum GzipError: Error, CustomStringConvertible {
    case malformed(String)

    var description: String {
        switch self {
        case .malformed(let why): return "malformed gzip data: \(why)"
        }
    }
}

enum Gzip {
    /// The decompressed bytes of the gzip members in `data`.
    static func decompress(_ data: [UInt8]) throws -> [UInt8] {
        var out: [UInt8] = []
        var offset = 0
        while offset < data.count {
            var reader = BitReader(data, at: try headerEnd(data, at: offset))
            let start = out.count
            try inflate(&reader, into: &out)
            let trailer = reader.byteAligned()
            guard trailer + 8 <= data.count else { throw GzipError.malformed("truncated trailer") }
            let crc = UInt32(data[trailer]) | UInt32(data[trailer + 1]) << 8 | UInt32(data[trailer + 2]) << 16 | UInt32(data[trailer + 3]) << 24
            let size = UInt32(data[trailer + 4]) | UInt32(data[trailer + 5]) << 8 | UInt32(data[trailer + 6]) << 16 | UInt32(data[trailer + 7]) << 24
            guard crc == crc32(out[start...]), size == UInt32(truncatingIfNeeded: out.count - start) else {
                throw GzipError.malformed("CRC-32 or length does not match")
            }
            offset = trailer + 8
        }
        return out
    }

    /// Skips a member header (magic, method 8, optional extra / name / comment / header CRC).
    private static func headerEnd(_ d: [UInt8], at start: Int) throws -> Int {
        guard d.count >= start + 10, d[start] == 0x1f, d[start + 1] == 0x8b, d[start + 2] == 8 else {
            throw GzipError.malformed("not a gzip member with DEFLATE data")
        }
        let flags = d[start + 3]
        var i = start + 10
        if flags & 4 != 0 {
            guard i + 2 <= d.count else { throw GzipError.malformed("truncated header") }
            i += 2 + Int(d[i]) | Int(d[i + 1]) << 8
        }
        for bit: UInt8 in [8, 16] where flags & bit != 0 {       // zero-terminated name, comment
            while i < d.count, d[i] != 0 { i += 1 }
            i += 1
        }
        if flags & 2 != 0 { i += 2 }
        guard i <= d.count else { throw GzipError.malformed("truncated header") }
        return i
    }

    static func crc32<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
        var crc: UInt32 = 0xffff_ffff
        for b in bytes { crc = crcTable[Int((crc ^ UInt32(b)) & 0xff)] ^ (crc >> 8) }
        return crc ^ 0xffff_ffff
    }

    private static let crcTable: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xedb8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    // MARK: DEFLATE

    private static let lengthBase: [Int] = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59,
                                            67, 83, 99, 115, 131, 163, 195, 227, 258]
    private static let lengthExtra: [Int] = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4,
                                             5, 5, 5, 5, 0]
    private static let distanceBase: [Int] = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513,
                                              769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577]
    private static let distanceExtra: [Int] = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10,
                                               11, 11, 12, 12, 13, 13]
    /// The order in which code-length code lengths are stored.
    private static let codeLengthOrder = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]

    private static func inflate(_ r: inout BitReader, into out: inout [UInt8]) throws {
        var last = false
        while !last {
            last = try r.bits(1) == 1
            switch try r.bits(2) {
            case 0:
                let i = r.byteAligned()
                guard i + 4 <= r.data.count else { throw GzipError.malformed("truncated stored block") }
                let length = Int(r.data[i]) | Int(r.data[i + 1]) << 8
                guard i + 4 + length <= r.data.count else { throw GzipError.malformed("truncated stored block") }
                out.append(contentsOf: r.data[(i + 4)..<(i + 4 + length)])
                r.seek(byte: i + 4 + length)
            case 1:
                try block(&r, &out, Huffman(lengths: fixedLiteralLengths), Huffman(lengths: Array(repeating: 5, count: 30)))
            case 2:
                let (literals, distances) = try dynamicCodes(&r)
                try block(&r, &out, literals, distances)
            default:
                throw GzipError.malformed("reserved block type")
            }
        }
    }

    private static let fixedLiteralLengths: [Int] =
        Array(repeating: 8, count: 144) + Array(repeating: 9, count: 112) + Array(repeating: 7, count: 24) + Array(repeating: 8, count: 8)

    private static func dynamicCodes(_ r: inout BitReader) throws -> (Huffman, Huffman) {
        let literalCount = try r.bits(5) + 257, distanceCount = try r.bits(5) + 1, codeCount = try r.bits(4) + 4
        var codeLengths = Array(repeating: 0, count: 19)
        for i in 0..<codeCount { codeLengths[codeLengthOrder[i]] = try r.bits(3) }
        let codeCode = try Huffman(lengths: codeLengths)
        var lengths: [Int] = []
        while lengths.count < literalCount + distanceCount {
            let symbol = try codeCode.decode(&r)
            switch symbol {
            case 0..<16: lengths.append(symbol)
            case 16:
                guard let previous = lengths.last else { throw GzipError.malformed("repeat without a length") }
                lengths += Array(repeating: previous, count: 3 + (try r.bits(2)))
            case 17: lengths += Array(repeating: 0, count: 3 + (try r.bits(3)))
            default: lengths += Array(repeating: 0, count: 11 + (try r.bits(7)))
            }
        }
        guard lengths.count == literalCount + distanceCount else { throw GzipError.malformed("too many code lengths") }
        return (try Huffman(lengths: Array(lengths[..<literalCount])), try Huffman(lengths: Array(lengths[literalCount...])))
    }

    private static func block(_ r: inout BitReader, _ out: inout [UInt8], _ literals: Huffman, _ distances: Huffman) throws {
        while true {
            let symbol = try literals.decode(&r)
            if symbol < 256 {
                out.append(UInt8(symbol))
            } else if symbol == 256 {
                return
            } else {
                let l = symbol - 257
                guard l < 29 else { throw GzipError.malformed("bad length symbol") }
                let length = lengthBase[l] + (try r.bits(lengthExtra[l]))
                let d = try distances.decode(&r)
                guard d < 30 else { throw GzipError.malformed("bad distance symbol") }
                let distance = distanceBase[d] + (try r.bits(distanceExtra[d]))
                guard distance <= out.count else { throw GzipError.malformed("distance beyond the output") }
                let from = out.count - distance
                for k in 0..<length { out.append(out[from + k]) }
            }
        }
    }
}

/// Least-significant-bit-first reader over a byte array.
private struct BitReader {
    let data: [UInt8]
    private var position: Int      // next byte
    private var buffer: UInt64 = 0
    private var count = 0          // bits in buffer

    init(_ data: [UInt8], at byte: Int) {
        self.data = data
        position = byte
    }

    mutating func bits(_ n: Int) throws -> Int {
        if n == 0 { return 0 }
        while count < n {
            guard position < data.count else { throw GzipError.malformed("unexpected end of data") }
            buffer |= UInt64(data[position]) << UInt64(count)
            position += 1
            count += 8
        }
        let value = Int(buffer & ((1 << UInt64(n)) - 1))
        buffer >>= UInt64(n)
        count -= n
        return value
    }

    /// Up to `n` bits without consuming them (fewer at the end of the data, zero-padded).
    mutating func peek(_ n: Int) -> Int {
        while count < n, position < data.count {
            buffer |= UInt64(data[position]) << UInt64(count)
            position += 1
            count += 8
        }
        return Int(buffer & ((1 << UInt64(n)) - 1))
    }

    mutating func skip(_ n: Int) throws {
        guard n <= count else { throw GzipError.malformed("unexpected end of data") }
        buffer >>= UInt64(n)
        count -= n
    }

    /// Drops the bits left in the current byte; returns the index of the next whole byte.
    mutating func byteAligned() -> Int {
        let whole = count / 8
        buffer = 0
        count = 0
        position -= whole
        return position
    }

    mutating func seek(byte: Int) {
        position = byte
        buffer = 0
        count = 0
    }
}

/// A canonical Huffman code: codes of up to 9 bits through a table, longer ones by walking the lengths.
private struct Huffman {
    static let tableBits = 9
    /// Per `tableBits` bit pattern (bit-reversed code prefix): symbol << 4 | length, or −1.
    private var table: [Int32]
    private var counts: [Int]      // codes per length
    private var symbols: [Int]     // symbols by code order

    init(lengths: [Int]) throws {
        counts = Array(repeating: 0, count: 16)
        for l in lengths { counts[l] += 1 }
        counts[0] = 0
        var offsets = Array(repeating: 0, count: 16)
        for l in 1..<16 { offsets[l] = offsets[l - 1] + counts[l - 1] }
        symbols = Array(repeating: 0, count: lengths.count)
        for (s, l) in lengths.enumerated() where l > 0 {
            symbols[offsets[l]] = s
            offsets[l] += 1
        }
        table = Array(repeating: -1, count: 1 << Self.tableBits)
        var code = 0, index = 0
        for length in 1...15 {
            for _ in 0..<counts[length] {
                if length <= Self.tableBits {
                    var reversed = 0
                    for b in 0..<length where code & (1 << b) != 0 { reversed |= 1 << (length - 1 - b) }
                    let entry = Int32(symbols[index] << 4 | length)
                    var fill = reversed
                    while fill < table.count { table[fill] = entry; fill += 1 << length }
                }
                code += 1
                index += 1
            }
            code <<= 1
        }
    }

    func decode(_ r: inout BitReader) throws -> Int {
        let entry = table[r.peek(Self.tableBits)]
        if entry >= 0 {
            try r.skip(Int(entry & 15))
            return Int(entry >> 4)
        }
        // Longer codes: read bit by bit (RFC 1951 codes are read most-significant bit first).
        var code = 0, first = 0, index = 0
        for length in 1...15 {
            code |= try r.bits(1)
            let count = counts[length]
            if code - count < first { return symbols[index + (code - first)] }
            index += count
            first = (first + count) << 1
            code <<= 1
        }
        throw GzipError.malformed("invalid Huffman code")
    }
}
