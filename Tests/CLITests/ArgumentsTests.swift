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
}
