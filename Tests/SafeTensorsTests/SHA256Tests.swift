import SafeTensors
import XCTest

final class SHA256Tests: XCTestCase {
    /// FIPS 180-4 test vectors.
    func testKnownDigests() throws {
        let digest = { (s: String) in Array(s.utf8).withUnsafeBytes { SHA256.hexDigest(of: $0) } }
        XCTAssertEqual(digest(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(digest("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(digest(String(repeating: "a", count: 1000)),
                       "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
    }

    /// A file that cannot be read is named with the operating system's cause, not Foundation's
    /// "The operation could not be completed" text.
    func testMissingFileErrorNamesPathAndCause() {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("no-such-\(UUID().uuidString).safetensors").path
        XCTAssertThrowsError(try SHA256.hexDigest(ofFile: path)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains(path) && text.contains("No such file or directory"), text)
            XCTAssertFalse(text.contains("could not be completed"), text)
        }
    }
}
