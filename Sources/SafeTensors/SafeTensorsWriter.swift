// SafeTensorsWriter: collects tensors and metadata, then writes a safetensors file atomically.
//
// The file is written to a temporary name in the destination folder, fsynced, and renamed over the
// final name, so a crash or an error never leaves a half-written file under that name. Tensors are
// laid out back to back, and the header is padded with spaces to a multiple of 8.
import Foundation
import TensorCore

public struct SafeTensorsWriter {
    private enum Payload {
        case tensor(Tensor)
        case bytes([UInt8])
    }

    private struct Entry {
        let name: String
        let dtype: DType
        let shape: [Int]
        let payload: Payload
        var byteCount: Int { shape.reduce(1, *) * dtype.byteSize }
    }

    private var entries: [String: Entry] = [:]
    /// `__metadata__` strings written with the tensors.
    public var metadata: [String: String]

    public init(metadata: [String: String] = [:]) {
        self.metadata = metadata
    }

    /// Adds `tensor` under `name`, stored as `dtype` (F32, F16 or BF16; F16/BF16 round to nearest even).
    public mutating func add(_ name: String, _ tensor: Tensor, as dtype: DType = .f32) throws {
        guard dtype == .f32 || dtype == .f16 || dtype == .bf16 else {
            throw SafeTensorsError.invalidArgument(file: name, reason: "a Float tensor can be stored as F32, F16 or BF16, not \(dtype.rawValue)")
        }
        try insert(Entry(name: name, dtype: dtype, shape: tensor.shape, payload: .tensor(tensor)))
    }

    /// Adds already-encoded little-endian `bytes` of any dtype under `name`.
    public mutating func add(_ name: String, dtype: DType, shape: [Int], bytes: [UInt8]) throws {
        guard let n = Tensor.elementCount(shape), n.multipliedReportingOverflow(by: dtype.byteSize) == (bytes.count, false) else {
            throw SafeTensorsError.invalidArgument(file: name, reason: "\(dtype.rawValue) \(shape) does not match \(bytes.count) bytes")
        }
        try insert(Entry(name: name, dtype: dtype, shape: shape, payload: .bytes(bytes)))
    }

    private mutating func insert(_ entry: Entry) throws {
        guard !entry.name.isEmpty, entry.name != "__metadata__" else {
            throw SafeTensorsError.invalidArgument(file: entry.name, reason: "'\(entry.name)' cannot name a tensor")
        }
        guard entries[entry.name] == nil else {
            throw SafeTensorsError.invalidArgument(file: entry.name, reason: "tensor '\(entry.name)' added twice")
        }
        entries[entry.name] = entry
    }

    /// The header JSON (padded) for `sorted` entries.
    private func headerBytes(_ sorted: [Entry]) -> [UInt8] {
        var parts: [String] = []
        if !metadata.isEmpty {
            let pairs = metadata.sorted { $0.key < $1.key }.map { JSONWriter.quoted($0.key) + ":" + JSONWriter.quoted($0.value) }
            parts.append("\"__metadata__\":{" + pairs.joined(separator: ",") + "}")
        }
        var offset = 0
        for e in sorted {
            let shape = e.shape.map(String.init).joined(separator: ",")
            parts.append(JSONWriter.quoted(e.name) + ":{\"dtype\":\"\(e.dtype.rawValue)\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + e.byteCount)]}")
            offset += e.byteCount
        }
        var bytes = Array(("{" + parts.joined(separator: ",") + "}").utf8)
        while bytes.count % 8 != 0 { bytes.append(0x20) }
        return bytes
    }

    /// Writes `tensors` (all stored as `dtype`) and `metadata` to `path` in one call.
    public static func write(_ tensors: [String: Tensor], metadata: [String: String] = [:], as dtype: DType = .f32,
                             to path: String) throws {
        var writer = SafeTensorsWriter(metadata: metadata)
        for (name, tensor) in tensors { try writer.add(name, tensor, as: dtype) }
        try writer.write(to: path)
    }

    /// Writes everything added so far to `path` (temp file, fsync, rename).
    public func write(to path: String) throws {
        // Wider dtypes first, then by name (as the reference writer): with the header padded to 8 bytes,
        // every tensor then starts at a multiple of its element size.
        let sorted = entries.values.sorted { ($1.dtype.byteSize, $0.name) < ($0.dtype.byteSize, $1.name) }
        let header = headerBytes(sorted)
        try AtomicFile.write(to: path) { sink in
            var length = UInt64(header.count).littleEndian
            try withUnsafeBytes(of: &length) { try sink($0) }
            try header.withUnsafeBytes { try sink($0) }
            for e in sorted { try SafeTensorsWriter.writePayload(e, sink) }
        }
    }

    private static func writePayload(_ e: Entry, _ sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        switch e.payload {
        case .bytes(let b):
            try b.withUnsafeBytes { try sink($0) }
        case .tensor(let t):
            try t.withUnsafeBufferPointer { src in
                if e.dtype == .f32 { return try sink(UnsafeRawBufferPointer(src)) }
                let chunk = 1 << 20
                let buffer = UnsafeMutablePointer<UInt16>.allocate(capacity: chunk)
                defer { buffer.deallocate() }
                var lo = 0
                while lo < src.count {
                    let n = min(chunk, src.count - lo)
                    if e.dtype == .f16 {
                        convertF32ToF16(src.baseAddress! + lo, buffer, count: n)
                    } else {
                        convertF32ToBF16(src.baseAddress! + lo, buffer, count: n)
                    }
                    try sink(UnsafeRawBufferPointer(start: buffer, count: n * 2))
                    lo += n
                }
            }
        }
    }
}

/// Writes a file under a temporary name in the same folder, fsyncs it and renames it into place.
enum AtomicFile {
    static func write(to path: String, _ body: ((UnsafeRawBufferPointer) throws -> Void) throws -> Void) throws {
        let url = URL(fileURLWithPath: path)
        let folder = url.deletingLastPathComponent().path
        let temporary = folder + "/." + url.lastPathComponent + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw SafeTensorsFile.posixError(path, "create \(temporary)") }
        var closed = false
        var renamed = false
        defer {
            if !closed { close(fd) }
            if !renamed { unlink(temporary) }
        }
        try body { bytes in
            var done = 0
            while done < bytes.count {
                let n = Foundation.write(fd, bytes.baseAddress! + done, bytes.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw SafeTensorsFile.posixError(path, "write")
                }
                done += n
            }
        }
        guard fsync(fd) == 0 else { throw SafeTensorsFile.posixError(path, "fsync") }
        closed = true
        guard close(fd) == 0 else { throw SafeTensorsFile.posixError(path, "close") }
        guard rename(temporary, path) == 0 else { throw SafeTensorsFile.posixError(path, "rename") }
        renamed = true
        let dir = open(folder, O_RDONLY | O_CLOEXEC)
        if dir >= 0 {
            fsync(dir)
            close(dir)
        }
    }
}
