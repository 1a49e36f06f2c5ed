// SafeTensorsFile: a validated, memory-mapped safetensors file whose tensors are read lazily by name.
//
// Opening reads and validates the header with pread (nothing of it is trusted before that), then
// maps the file read-only. `tensor(_:)` converts one tensor into a new Float32 `Tensor`, in parallel
// slices, and hands the source pages back to the kernel as it goes, so loading a whole checkpoint
// costs the Float32 bytes in memory and not the file's bytes on top (no double copy).
import Foundation
import TensorCore

public final class SafeTensorsFile: @unchecked Sendable {
    /// The path as given to `init`; every error names it.
    public let path: String
    public let header: SafeTensorsHeader
    private let base: UnsafeRawPointer
    private let mappedSize: Int
    private let index: [String: Int]

    /// Tensors in file order.
    public var tensors: [TensorInfo] { header.tensors }
    /// Tensor names in file order.
    public var names: [String] { header.tensors.map(\.name) }
    /// The `__metadata__` strings.
    public var metadata: [String: String] { header.metadata }

    /// Opens and validates `path`; throws `SafeTensorsError` for anything malformed.
    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SafeTensorsFile.posixError(path, "open") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw SafeTensorsFile.posixError(path, "fstat") }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw SafeTensorsError.io(file: path, operation: "open", detail: "not a regular file")
        }
        let fileSize = Int(st.st_size)
        var prefix = [UInt8](repeating: 0, count: 8)
        let got = try prefix.withUnsafeMutableBytes { try SafeTensorsFile.readFully(fd, $0, at: 0, path) }
        let length = try prefix.withUnsafeBytes {
            try SafeTensorsHeader.headerLength(prefix: UnsafeRawBufferPointer(rebasing: $0.prefix(got)),
                                               fileSize: fileSize, file: path)
        }
        var json = [UInt8](repeating: 0, count: length)
        let jsonRead = try json.withUnsafeMutableBytes { try SafeTensorsFile.readFully(fd, $0, at: 8, path) }
        guard jsonRead == length else {
            throw SafeTensorsError.headerPastEnd(file: path, length: UInt64(length), fileSize: 8 + jsonRead)
        }
        header = try json.withUnsafeBytes { try SafeTensorsHeader(json: $0, fileSize: fileSize, file: path) }
        guard let map = mmap(nil, fileSize, PROT_READ, MAP_PRIVATE, fd, 0), map != MAP_FAILED else {
            throw SafeTensorsFile.posixError(path, "mmap")
        }
        base = UnsafeRawPointer(map)
        mappedSize = fileSize
        var index: [String: Int] = [:]
        for (i, t) in header.tensors.enumerated() { index[t.name] = i }
        self.index = index
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: base), mappedSize) }

    /// The header entry of `name`.
    public func info(_ name: String) throws -> TensorInfo {
        guard let i = index[name] else { throw SafeTensorsError.missingTensor(file: path, name: name) }
        return header.tensors[i]
    }

    /// The stored bytes of `name`, valid only inside `body`.
    public func withRawBytes<R>(of name: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let t = try info(name)
        return try body(UnsafeRawBufferPointer(start: base + header.dataStart + t.dataOffsets.lowerBound,
                                               count: t.dataOffsets.count))
    }

    /// Tensor `name` converted to Float32, with its stored shape.
    public func tensor(_ name: String) throws -> Tensor {
        let t = try info(name)
        let source = base + header.dataStart + t.dataOffsets.lowerBound
        let elementSize = t.dtype.byteSize
        return Tensor(shape: t.shape) { out in
            let count = out.count
            let destination = out.baseAddress!
            SafeTensorsFile.advise(destination, byteCount: count * 4, MADV_HUGEPAGE)
            let workers = Parallel.workers(for: count, minWorkPerThread: 1 << 18)
            Parallel.forSlices(count: count, workers: workers) { _, range in
                var lo = range.lowerBound
                while lo < range.upperBound {
                    let hi = min(range.upperBound, lo + SafeTensorsFile.chunkElements)
                    let chunk = source + lo * elementSize, chunkBytes = (hi - lo) * elementSize
                    SafeTensorsFile.advise(chunk, byteCount: chunkBytes, SafeTensorsFile.populateRead)
                    Conversion.toFloat(t.dtype, chunk, destination + lo, count: hi - lo)
                    SafeTensorsFile.advise(chunk, byteCount: chunkBytes, MADV_DONTNEED)
                    lo = hi
                }
            }
        }
    }

    /// Every tensor, converted to Float32, by name.
    public func loadAll() throws -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for name in names { out[name] = try tensor(name) }
        return out
    }

    /// Elements converted between two page releases (4 MiB of F32 output).
    private static let chunkElements = 1 << 20

    private static let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))

    /// Linux MADV_POPULATE_READ (5.14+): map a range's pages in one call instead of one fault each.
    private static let populateRead: Int32 = 22

    /// `madvise` on the whole pages inside the range; a hint only, failures are ignored. Used to
    /// back the F32 output with huge pages, to map a source chunk in one call, and to drop the
    /// mapped source pages once converted (MADV_DONTNEED: the page cache keeps them, a later read
    /// maps them again), so converted sources stop counting towards resident memory.
    private static func advise(_ start: UnsafeRawPointer, byteCount: Int, _ advice: Int32) {
        let page = pageSize
        let lo = (Int(bitPattern: start) + page - 1) / page * page
        let hi = (Int(bitPattern: start) + byteCount) / page * page
        if hi > lo { madvise(UnsafeMutableRawPointer(bitPattern: lo), hi - lo, advice) }
    }

    /// Reads up to `buffer.count` bytes at `offset`; returns how many (fewer only at end of file).
    private static func readFully(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer, at offset: Int, _ path: String) throws -> Int {
        var done = 0
        while done < buffer.count {
            let n = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw posixError(path, "read")
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    static func posixError(_ path: String, _ operation: String) -> SafeTensorsError {
        .io(file: path, operation: operation, detail: String(cString: strerror(errno)))
    }
}
