// Where the test fixtures live: the repository root, `Tests/…`, the tiny pipeline folders, and scratch
// folders that a test removes when it ends.
import Foundation
import XCTest

public enum TestPaths {
    /// The repository root (the folder holding `Package.swift`).
    public static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// `Tests/<relative>` in the source tree.
    public static func tests(_ relative: String) -> String {
        repository.appendingPathComponent("Tests").appendingPathComponent(relative).path
    }

    /// `<repository>/<relative>`, e.g. `images` or `pipelines/judge/judge.safetensors`.
    public static func repository(_ relative: String) -> String {
        repository.appendingPathComponent(relative).path
    }

    /// A file or folder of `Tests/PipelineTests/Fixtures/` (made by Tests/Reference/make_pipeline_goldens.py):
    /// `tiny-sd` (a latent SD-1-like pipeline), `tiny-pixel` (a pixel-space one) and their goldens.
    public static func pipelineFixture(_ name: String) -> String { tests("PipelineTests/Fixtures/\(name)") }
}

extension XCTestCase {
    /// A new empty folder under the system's temporary folder, removed when the test ends.
    public func temporaryDirectory(_ prefix: String = "test") throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }
}
