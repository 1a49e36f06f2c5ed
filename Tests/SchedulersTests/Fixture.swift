// Loading of the golden files under Fixtures/ and a scale-aware comparison that names mismatches.
import Foundation
import XCTest
import TensorCore

enum Fixture {
    /// Decodes `Fixtures/<name>` (made by a script in Tests/Reference).
    static func load<T: Decodable>(_ type: T.Type, _ name: String) throws -> T {
        guard let url = Bundle.module.url(forResource: "Fixtures/\(name)", withExtension: nil) else {
            throw NSError(domain: "Fixture", code: 1, userInfo: [NSLocalizedDescriptionKey: "missing fixture \(name)"])
        }
        return try JSONDecoder().decode(T.self, from: Data(contentsOf: url))
    }
}

/// Asserts |actual − expected| ≤ tol · max(1, max|expected|) element-wise; reports the first mismatches.
func assertClose(_ actual: [Float], _ expected: [Float], tol: Float, _ what: String,
                 file: StaticString = #filePath, line: UInt = #line) {
    guard actual.count == expected.count else {
        XCTFail("\(what): \(actual.count) values, expected \(expected.count)", file: file, line: line)
        return
    }
    let scale = max(1, expected.map { abs($0) }.max() ?? 0)
    var bad: [String] = []
    var worst: Float = 0
    for i in actual.indices {
        let err = abs(actual[i] - expected[i])
        worst = max(worst, err)
        if !(err <= tol * scale) && bad.count < 4 { bad.append("[\(i)] \(actual[i]) vs \(expected[i])") }
    }
    if !bad.isEmpty {
        XCTFail("\(what): max error \(worst) > \(tol)·\(scale); " + bad.joined(separator: ", "), file: file, line: line)
    }
}
