// train-base's output folders: a trial run never replaces the embedded model or an earlier run's checkpoint.
@testable import CLI
import TestSupport
import XCTest

final class TrainBaseFoldersTests: XCTestCase {
    func testDefaultOutIsANewFolderAndAFreshRunKeepsACheckpoint() throws {
        let a = TrainBaseFolders.defaultOut(date: Date(timeIntervalSince1970: 0))
        XCTAssertEqual(a, "outputs/base-models/19700101-000000")
        XCTAssertNotEqual(a, TrainBaseFolders.defaultOut(date: Date(timeIntervalSince1970: 1)))
        XCTAssertFalse(a.hasPrefix("pipelines/"))
        let run = try temporaryDirectory("train-base-run")
        XCTAssertNoThrow(try TrainBaseFolders.checkFreshRun(run.path))
        try Data([0]).write(to: run.appendingPathComponent("checkpoint.safetensors"))
        XCTAssertThrowsError(try TrainBaseFolders.checkFreshRun(run.path)) { XCTAssertTrue("\($0)".contains("--resume"), "\($0)") }
    }
}
