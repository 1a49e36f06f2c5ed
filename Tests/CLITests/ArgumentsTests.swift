// The one argument parser of the six executables: `-h`/`--help` everywhere, declared one-letter options,
// typed values, and the exit codes `runCommand` gives (2 for usage errors, 1 for failures).
@testable import CLI
import XCTest

final class ArgumentsTests: XCTestCase {
    func testHelpAndShortOptions() throws {
        let a = try ParsedArguments(["merge", "-h", "a.safetensors:0.5", "-o", "out.safetensors", "--", "-o"],
                                    options: ["out"], flagNames: [], shortNames: ["-o": "out"])
        XCTAssertTrue(a.has("help"), "-h is --help for every command")
        XCTAssertEqual(a.string("out"), "out.safetensors")
        XCTAssertEqual(a.positionals, ["merge", "a.safetensors:0.5", "-o"], "after --, -o is a positional")
        XCTAssertTrue(try ParsedArguments(["--help"], options: [], flagNames: []).has("help"))
    }

    func testTypedValuesAndMissingOptionsAreUsageErrors() throws {
        let a = try ParsedArguments(["--lr", "6e-4", "--steps=12", "--seed", "x"], options: ["lr", "steps", "seed", "count"],
                                    flagNames: [])
        XCTAssertEqual(try a.float("lr"), Float("6e-4"))
        XCTAssertEqual(try a.requiredInt("steps"), 12)
        XCTAssertThrowsError(try a.int("seed")) { XCTAssertEqual(($0 as? CommandLineError)?.exitCode, 2) }
        XCTAssertThrowsError(try a.required("count")) { XCTAssertEqual($0 as? CommandLineError, .usage("missing --count")) }
        XCTAssertThrowsError(try ParsedArguments(["--bogus"], options: [], flagNames: [])) {
            XCTAssertEqual(($0 as? CommandLineError)?.exitCode, 2)
        }
    }

    func testExitCodes() {
        struct Failure: Error {}
        XCTAssertEqual(runCommand("test") {}, 0)
        XCTAssertEqual(runCommand("test") { throw CommandLineError.usage("bad") }, 2)
        XCTAssertEqual(runCommand("test") { throw CommandLineError.failure("failed") }, 1)
        XCTAssertEqual(runCommand("test") { throw Failure() }, 1)
        XCTAssertEqual(GenerateCommand.main(["-h"]), 0, "generate -h prints help, it is not a prompt")
        XCTAssertEqual(GenerateCommand.main(["--steps", "x", "a prompt"]), 2)
    }
    /// A Foundation file error is one sentence with the path and the cause, not an `NSCocoaErrorDomain` dump.
    func testFileErrorsInWords() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("in-words-\(UUID().uuidString)")
        try Data([0]).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        XCTAssertThrowsError(try FileManager.default.createDirectory(at: file.appendingPathComponent("sub"),
                                                                     withIntermediateDirectories: true)) { error in
            let text = inWords(error)
            XCTAssertTrue(text.hasPrefix(file.path), text)
            XCTAssertFalse(text.contains("NSCocoaErrorDomain") || text.contains("UserInfo"), text)
        }
        let denied = CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: "/x/out"])
        XCTAssertEqual(inWords(denied), "/x/out: Permission denied")
    }
    func testAliasesAndSnakeCaseSpellings() throws {
        let a = try ParsedArguments(["--cfg-scale", "5", "--max_train_steps=9", "--no_report"], options: ["cfg", "steps"],
                                    flagNames: ["no-report"], aliases: ["cfg-scale": "cfg", "max-train-steps": "steps"])
        XCTAssertEqual(a.string("cfg"), "5")
        XCTAssertEqual(a.string("steps"), "9")
        XCTAssertTrue(a.has("no-report"))
        XCTAssertThrowsError(try ParsedArguments(["--some_thing"], options: [], flagNames: [])) {
            XCTAssertTrue("\($0)".contains("--some_thing"), "\($0)")
        }
    }
}



final class StopRequestTests: XCTestCase {
    /// The first Ctrl-C only asks the loop to stop after the step (the handler says so at once on stderr).
    func testFirstInterruptRequestsAStop() {
        StopRequest.install()
        defer { StopRequest.reset(); signal(SIGINT, SIG_DFL); signal(SIGTERM, SIG_DFL) }
        XCTAssertFalse(StopRequest.isRequested)
        let child = fork()
        if child == 0 {                   // a second Ctrl-C stops the process at once, with status 130
            raise(SIGINT)
            raise(SIGINT)
            _exit(0)
        }
        var status: Int32 = 0
        XCTAssertEqual(waitpid(child, &status, 0), child)
        XCTAssertEqual((status >> 8) & 0xFF, 130, "exit status of the child")
        XCTAssertFalse(StopRequest.isRequested)
        raise(SIGINT)
        XCTAssertTrue(StopRequest.isRequested)
    }
}
