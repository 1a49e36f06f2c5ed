// SHA-256 (FIPS 180-4), for A1111-compatible hashes: `Model hash` is the first 10 hex digits of the UNet
// weight file's SHA-256; `Lora hashes` entries hash a safetensors file's data section (see `dataSectionHexDigest`).

import Foundation
import TensorCore

public enum SHA256 {
    /// Lower-case hex digest of the file at `path`, read through a memory map.
    public static func hexDigest(ofFile path: String) throws -> String {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        } catch {
            throw SafeTensorsError.io(file: path, operation: "read", detail: fileErrorCause(error))
        }
        return data.withUnsafeBytes { hexDigest(of: $0) }
    }

    /// SHA-256 of a safetensors file's bytes after its header (sd-scripts' `addnet_hash_safetensors`, which
    /// A1111 uses for `Lora hashes`), so editing the metadata keeps the hash. Other files hash whole.
    public static func dataSectionHexDigest(ofFile path: String) throws -> String {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        } catch {
            throw SafeTensorsError.io(file: path, operation: "read", detail: fileErrorCause(error))
        }
        guard path.lowercased().hasSuffix(".safetensors"), data.count >= 8 else {
            return data.withUnsafeBytes { hexDigest(of: $0) }
        }
        let n = data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard n <= UInt64(data.count - 8) else {
            throw SafeTensorsError.headerPastEnd(file: path, length: n, fileSize: data.count)
        }
        return data.withUnsafeBytes { hexDigest(of: UnsafeRawBufferPointer(rebasing: $0[(8 + Int(n))...])) }
    }

    /// Lower-case hex digest of `bytes`.
    public static func hexDigest(of bytes: UnsafeRawBufferPointer) -> String {
        var state: [UInt32] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                               0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]
        var schedule = [UInt32](repeating: 0, count: 64)
        let full = bytes.count / 64
        schedule.withUnsafeMutableBufferPointer { w in
            guard let base = bytes.baseAddress else { return }
            for block in 0..<full { compress(&state, base + block * 64, w) }
        }
        var tail = [UInt8](bytes[(full * 64)...])
        tail.append(0x80)
        while tail.count % 64 != 56 { tail.append(0) }
        let bitLength = UInt64(bytes.count) &* 8
        for shift in stride(from: 56, through: 0, by: -8) { tail.append(UInt8(truncatingIfNeeded: bitLength >> UInt64(shift))) }
        schedule.withUnsafeMutableBufferPointer { w in
            tail.withUnsafeBytes { t in
                for block in 0..<(t.count / 64) { compress(&state, t.baseAddress! + block * 64, w) }
            }
        }
        return state.map { word in
            let hex = String(word, radix: 16)
            return String(repeating: "0", count: 8 - hex.count) + hex
        }.joined()
    }

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

    @inline(__always) private static func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 - n)) }

    /// One 64-byte block into `state`; `w` is the 64-word message schedule scratch.
    private static func compress(_ state: inout [UInt32], _ block: UnsafeRawPointer, _ w: UnsafeMutableBufferPointer<UInt32>) {
        for i in 0..<16 {
            w[i] = UInt32(bigEndian: block.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))
        }
        for i in 16..<64 {
            let s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3)
            let s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10)
            w[i] = w[i - 16] &+ s0 &+ w[i - 7] &+ s1
        }
        var (a, b, c, d, e, f, g, h) = (state[0], state[1], state[2], state[3],
                                        state[4], state[5], state[6], state[7])
        k.withUnsafeBufferPointer { k in
            for i in 0..<64 {
                let t1 = h &+ (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) &+ ((e & f) ^ (~e & g)) &+ k[i] &+ w[i]
                let t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) &+ ((a & b) ^ (a & c) ^ (b & c))
                (h, g, f, e, d, c, b, a) = (g, f, e, d &+ t1, c, b, a, t1 &+ t2)
            }
        }
        state[0] &+= a; state[1] &+= b; state[2] &+= c; state[3] &+= d
        state[4] &+= e; state[5] &+= f; state[6] &+= g; state[7] &+= h
    }
}
