// SHA-256 (FIPS 180-4), for adapter and model hashes in PNG metadata and adapter files.
import Foundation

/// Streaming SHA-256 (named apart from Pipeline's file hasher).
public struct SHA256Stream {
    private var state: [UInt32] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]
    private var pending: [UInt8] = []
    private var length: UInt64 = 0

    private static let k: [UInt32] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ]

    public init() {}

    public mutating func update<D: Collection>(_ bytes: D) where D.Element == UInt8 {
        length &+= UInt64(bytes.count)
        pending.append(contentsOf: bytes)
        let whole = pending.count / 64 * 64
        var offset = 0
        while offset < whole { compress(offset); offset += 64 }
        pending.removeFirst(whole)
    }

    /// The digest as 64 lowercase hex digits.
    public mutating func finalizeHex() -> String {
        let bits = length &* 8
        var tail: [UInt8] = [0x80] + Array(repeating: 0, count: (119 - Int(length % 64)) % 64)
        for i in (0..<8).reversed() { tail.append(UInt8(truncatingIfNeeded: bits >> (8 * UInt64(i)))) }
        length &-= UInt64(tail.count)   // padding does not count toward the message length
        update(tail)
        return state.map { String(format: "%08x", $0) }.joined()
    }

    /// SHA-256 of `bytes` as hex.
    public static func hex<D: Collection>(_ bytes: D) -> String where D.Element == UInt8 {
        var h = SHA256Stream()
        h.update(bytes)
        return h.finalizeHex()
    }

    private mutating func compress(_ offset: Int) {
        var w = [UInt32](repeating: 0, count: 64)
        for i in 0..<16 {
            let b = offset + 4 * i
            w[i] = UInt32(pending[b]) << 24 | UInt32(pending[b + 1]) << 16 | UInt32(pending[b + 2]) << 8 | UInt32(pending[b + 3])
        }
        for i in 16..<64 {
            let s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3)
            let s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10)
            w[i] = w[i - 16] &+ s0 &+ w[i - 7] &+ s1
        }
        var (a, b, c, d, e, f, g, h) = (state[0], state[1], state[2], state[3], state[4], state[5], state[6], state[7])
        for i in 0..<64 {
            let t1 = h &+ (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) &+ ((e & f) ^ (~e & g)) &+ Self.k[i] &+ w[i]
            let t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) &+ ((a & b) ^ (a & c) ^ (b & c))
            (h, g, f, e, d, c, b, a) = (g, f, e, d &+ t1, c, b, a, t1 &+ t2)
        }
        for (i, v) in [a, b, c, d, e, f, g, h].enumerated() { state[i] &+= v }
    }

    @inline(__always) private func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { x >> n | x << (32 - n) }
}

/// Hashes that image metadata and adapter files carry.
public enum LoRAHash {
    /// The hash A1111 writes in `Lora hashes`: for a `.safetensors` file, SHA-256 of the bytes after the
    /// header (`addnet_hash_safetensors` in sd-scripts / A1111 `modules/hashes.py`, so editing metadata does
    /// not change it), first 12 hex digits; for other files SHA-256 of the whole file.
    public static func shortHash(ofFile path: String) throws -> String {
        String(try fullHash(ofFile: path).prefix(12))
    }

    /// The full 64-digit hash `shortHash` abbreviates.
    public static func fullHash(ofFile path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw AdaptersError.invalidRequest("\(path): cannot read the file")
        }
        guard path.lowercased().hasSuffix(".safetensors"), data.count >= 8 else { return SHA256Stream.hex(data) }
        let n = data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard n <= UInt64(data.count - 8) else { throw AdaptersError.invalidRequest("\(path): header length past the end of the file") }
        return SHA256Stream.hex(data.dropFirst(8 + Int(n)))
    }

    /// `"name: hash, name2: hash2"`, the value of A1111's `Lora hashes` parameter (quoted by the caller).
    public static func parameterValue(_ entries: [(name: String, hash: String)]) -> String {
        entries.map { "\($0.name): \($0.hash)" }.joined(separator: ", ")
    }
}
