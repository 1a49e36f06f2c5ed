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

final class AdapterBaseTests: XCTestCase {
    /// `lora convert --to diffusers` on a train-style adapter needs no --pipeline: its metadata names the embedded model.
    func testKohyaNamesResolveAgainstTheModelTheMetadataNames() throws {
        let embedded = { "/somewhere/pipelines/toy" }
        XCTAssertEqual(try AdapterBase.pipeline(given: nil, metadata: ["ss_base_model": "toy"], embedded: embedded), embedded())
        XCTAssertEqual(try AdapterBase.pipeline(given: "mine", metadata: ["ss_base_model": "toy"], embedded: embedded), "mine")
        XCTAssertThrowsError(try AdapterBase.pipeline(given: nil, metadata: ["ss_base_model": "sd15"], embedded: embedded)) {
            XCTAssertTrue("\($0)".contains("--pipeline") && "\($0)".contains("\"sd15\""), "\($0)")
        }
    }
}
