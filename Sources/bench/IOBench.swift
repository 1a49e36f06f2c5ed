// bench io: loading a large F16 safetensors file into F32 tensors, and PNG decode + resize.
//
//   bench io [--gb N] [--cold] [--keep PATH] [--png-runs N]
//     --gb N        F32 bytes of the checkpoint to load, in GB (default 3.44: SD-1.5's UNet, 860M parameters)
//     --cold        evict the file from the page cache before loading (posix_fadvise DONTNEED)
//     --keep PATH   write the file to PATH (or reuse it if it exists) and keep it (default: /tmp, deleted)
//     --repeat N    load N times in this process (default 2). In a KVM guest the first touch of memory
//                   the guest never used costs a host fault per page; later loads reuse backed pages.
// Goals (issue "Formats and images"): >= 1 GB/s of F32 output, peak RSS <= 1.1x the F32 bytes;
// PNG decode + resize 1024x1024 -> 512x512 in <= 50 ms.
import CLI
import Foundation
import PNGImage
import SafeTensors
import TensorCore

func runIOBench(_ a: BenchArguments) throws {
    let gigabytes = try a.parsed.double("gb") ?? 3.44
    let pngRuns = try a.int("--png-runs") ?? 15
    let repeats = max(1, try a.int("--repeat") ?? 2)
    try benchPNG(runs: pngRuns)
    try benchSafeTensors(f32Bytes: Int(gigabytes * 1e9), cold: a.has("--cold"), keep: a.string("--keep"), repeats: repeats)
}

/// Seconds on the monotonic clock.
func now() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}

private func benchPNG(runs: Int) throws {
    let side = 1024
    var pixels = [UInt8](repeating: 0, count: side * side * 3)
    var state: UInt32 = 12345
    for y in 0..<side {
        for x in 0..<side {
            state = state &* 1_664_525 &+ 1_013_904_223
            let noise = Int(state >> 28)
            let i = (y * side + x) * 3
            pixels[i] = UInt8((x / 4 + noise) & 255)
            pixels[i + 1] = UInt8((y / 4 + (x * y) / 4096 + noise) & 255)
            pixels[i + 2] = UInt8(((x + y) / 8 + noise) & 255)
        }
    }
    let png = try PNG.encode(try Image(width: side, height: side, pixels: pixels))
    var decode: [Double] = [], resize: [Double] = [], total: [Double] = []
    let cpuStart = processCPUSeconds()
    for _ in 0..<runs {
        let t0 = now()
        let image = try PNG.decode(png).image
        let t1 = now()
        let small = try image.resized(width: 512, height: 512, filter: .lanczos)
        let t2 = now()
        precondition(small.width == 512)
        decode.append(t1 - t0)
        resize.append(t2 - t1)
        total.append(t2 - t0)
    }
    let cpuPerRun = (processCPUSeconds() - cpuStart) / Double(max(runs, 1))
    print(String(format: "png: decode %dx%d (%.1f MB PNG) median %.1f ms; Lanczos resize to 512x512 median %.1f ms; decode + resize median %.1f ms (best %.1f, %d runs, %d threads; goal <= 50 ms); %.1f CPU-ms per decode + resize",
                 side, side, Double(png.count) / 1e6, median(decode) * 1e3, median(resize) * 1e3,
                 median(total) * 1e3, total.min()! * 1e3, runs, Parallel.maxThreads, cpuPerRun * 1e3))
}

/// Shapes cycled through to make a checkpoint-like file (conv, linear, norm weights of an SD UNet).
private let checkpointShapes: [[Int]] = [[1280, 1280, 3, 3], [640, 640, 3, 3], [320, 320, 3, 3], [1280, 1280],
                                        [5120, 1280], [640, 640], [1280], [320, 768]]

/// Writes an F16 safetensors file of about `elements` random finite values; returns tensor count.
private func writeRandomF16(path: String, elements: Int) throws -> Int {
    var tensors: [(String, [Int])] = []
    var total = 0
    while total < elements {
        let shape = checkpointShapes[tensors.count % checkpointShapes.count]
        tensors.append(("blocks.\(tensors.count).weight", shape))
        total += shape.reduce(1, *)
    }
    var offset = 0
    var entries: [String] = []
    for (name, shape) in tensors {
        let bytes = shape.reduce(1, *) * 2
        entries.append("\"\(name)\":{\"dtype\":\"F16\",\"shape\":[\(shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + bytes)]}")
        offset += bytes
    }
    var header = Array(("{" + entries.joined(separator: ",") + "}").utf8)
    while header.count % 8 != 0 { header.append(0x20) }
    guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else {
        throw SafeTensorsError.io(file: path, operation: "create", detail: "cannot create the file")
    }
    defer { try? handle.close() }
    var length = UInt64(header.count).littleEndian
    try handle.write(contentsOf: Data(bytes: &length, count: 8) + Data(header))
    let chunk = 1 << 25
    var buffer = [UInt16](repeating: 0, count: chunk)
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    var remaining = offset / 2
    while remaining > 0 {
        let n = min(chunk, remaining)
        for j in 0..<n {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            buffer[j] = UInt16(truncatingIfNeeded: state >> 48) & 0xBBFF   // exponent < 31: finite
        }
        try buffer.withUnsafeBytes { try handle.write(contentsOf: Data($0.prefix(n * 2))) }
        remaining -= n
    }
    return tensors.count
}

private func benchSafeTensors(f32Bytes: Int, cold: Bool, keep: String?, repeats: Int) throws {
    let path = keep ?? NSTemporaryDirectory() + "/bench-io-\(getpid()).safetensors"
    defer { if keep == nil { unlink(path) } }
    let t0 = now()
    let reuse = keep.map { FileManager.default.fileExists(atPath: $0) } ?? false
    let count = reuse ? -1 : try writeRandomF16(path: path, elements: f32Bytes / 4)
    let fileBytes = (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
    if reuse {
        print(String(format: "safetensors: reusing %.2f GB %@", Double(fileBytes) / 1e9, path))
    } else {
        print(String(format: "safetensors: wrote %d F16 tensors, %.2f GB, in %.1f s to %@", count, Double(fileBytes) / 1e9, now() - t0, path))
    }
    if cold {
        let fd = open(path, O_RDONLY)
        if fd >= 0 {
            fdatasync(fd)
            posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)
            close(fd)
        }
    }
    let rssBefore = ProcessUsage.now().peakResidentBytes
    for round in 1...repeats {
        let t1 = now(), c1 = processCPUSeconds()
        let file = try SafeTensorsFile(path: path)
        let tensors = try file.loadAll()
        let seconds = now() - t1, cpu = processCPUSeconds() - c1
        let outBytes = tensors.values.reduce(0) { $0 + $1.count * 4 }
        let peak = ProcessUsage.now().peakResidentBytes
        print(String(format: "safetensors: load %d: %d tensors F16 -> F32, %.2f GB of F32 in %.2f s = %.2f GB/s (%@ page cache, %d threads; goal >= 1 GB/s); %.2f CPU-s",
                     round, tensors.count, Double(outBytes) / 1e9, seconds, Double(outBytes) / 1e9 / seconds,
                     cold && round == 1 ? "cold" : "warm", Parallel.maxThreads, cpu))
        print(String(format: "safetensors: load %d: peak RSS %.2f GB = %.3fx the F32 bytes (before loading: %.2f GB; goal <= 1.1x)",
                     round, Double(peak) / 1e9, Double(peak) / Double(outBytes), Double(rssBefore) / 1e9))
    }
}
