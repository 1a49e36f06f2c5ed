// Output file naming and writing that never overwrites: `<yyyyMMdd-HHmmss>-<seed>-<slug>.png`, with
// `-2`, `-3`, … appended when taken. The bytes go to a temporary file first and are then hard-linked
// under the final name (link fails instead of replacing an existing file), so a reader never sees a
// partial PNG and a concurrent run never loses its file.

import Foundation

public struct OutputFolder {
    public let url: URL

    /// Creates the folder (and parents) when needed and checks that files can be created in it.
    public init(path: String) throws {
        url = URL(fileURLWithPath: path, isDirectory: true)
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder) {
            guard isFolder.boolValue else { throw CommandLineError.failure("output folder \(path) is a file") }
        } else {
            do {
                try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
            } catch {
                throw CommandLineError.failure("cannot create output folder \(path) (\(inWords(error)))")
            }
        }
        guard access(url.path, W_OK | X_OK) == 0 else {
            throw CommandLineError.failure("output folder \(path) is not writable")
        }
    }

    /// Lower-case ASCII words of `text` joined by `-`, at most `limit` characters; "image" when empty.
    public static func slug(_ text: String, limit: Int = 48) -> String {
        var out = ""
        var pendingDash = false
        for scalar in text.lowercased().unicodeScalars {
            if scalar.isASCII, CharacterSet.alphanumerics.contains(scalar) {
                if pendingDash && !out.isEmpty { out += "-" }
                pendingDash = false
                out.unicodeScalars.append(scalar)
                if out.count >= limit { break }
            } else {
                pendingDash = true
            }
        }
        return out.isEmpty ? "image" : out
    }

    /// The base name (without extension) for an image made at `date` from `seed` and `prompt`.
    public static func baseName(date: Date, seed: UInt64, prompt: String) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = "yyyyMMdd-HHmmss"
        return "\(formatter.string(from: date))-\(seed)-\(slug(prompt))"
    }

    /// Writes `bytes` as `<base>.png` or, when that exists, `<base>-2.png`, … and returns the path.
    public func writeNew(_ bytes: [UInt8], baseName: String) throws -> String {
        let temporary = url.appendingPathComponent(".\(baseName).\(getpid()).\(UInt32.random(in: 0...UInt32.max)).tmp").path
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw CommandLineError.failure("cannot create \(temporary): \(String(cString: strerror(errno)))") }
        defer { unlink(temporary) }
        let complete: Bool = bytes.withUnsafeBytes { b in
            var done = 0
            while done < b.count {
                let n = write(fd, b.baseAddress! + done, b.count - done)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return false }
                done += n
            }
            return fsync(fd) == 0
        }
        let writeError = String(cString: strerror(errno))
        close(fd)
        guard complete else { throw CommandLineError.failure("cannot write \(temporary): \(writeError)") }
        var attempt = 1
        while true {
            let name = attempt == 1 ? "\(baseName).png" : "\(baseName)-\(attempt).png"
            let final = url.appendingPathComponent(name).path
            if link(temporary, final) == 0 { return final }
            guard errno == EEXIST else {
                throw CommandLineError.failure("cannot create \(final): \(String(cString: strerror(errno)))")
            }
            attempt += 1
        }
    }
}
