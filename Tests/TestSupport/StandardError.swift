// What a command prints on stderr while `body` runs (its warnings and notes), for tests that check them.
import Foundation

/// Runs `body` with file descriptor 2 sent to a scratch file and returns what was written there.
public func capturingStandardError(_ body: () throws -> Void) rethrows -> String {
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("stderr-\(UUID().uuidString).txt")
    _ = FileManager.default.createFile(atPath: file.path, contents: nil)
    defer { try? FileManager.default.removeItem(at: file) }
    let target = open(file.path, O_WRONLY | O_APPEND)
    let saved = dup(STDERR_FILENO)
    fflush(stderr)
    dup2(target, STDERR_FILENO)
    close(target)
    defer {
        fflush(stderr)
        dup2(saved, STDERR_FILENO)
        close(saved)
    }
    try body()
    fflush(stderr)
    return (try? String(contentsOf: file, encoding: .utf8)) ?? ""
}
