// The weight average of `train-base --ema` against diffusers' EMAModel (goldens: Tests/Reference/make_ema_goldens.py),
// and the loop's use of it: checkpoints carry it, a resumed run continues it bit for bit, swapping it in and out
// leaves the trained weights as they were.
import Autograd
import Foundation
import TensorCore
import TestSupport
import XCTest
@testable import Training

final class WeightAverageTests: XCTestCase {
    private struct Golden: Decodable {
        struct Record: Decodable { var update: Int, decay: Double, averages: [String: [Double]] }
        struct Case: Decodable { var decay: Double, records: [Record] }
        var shapes: [String: [Int]]
        var cases: [Case]
    }

    func testAverageMatchesDiffusersEMAModel() throws {
        let url = URL(fileURLWithPath: TestPaths.tests("NNTests/Fixtures/ema_goldens.json"))
        let golden = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: url))
        XCTAssertEqual(golden.cases.count, 2)
        for c in golden.cases {
            let parameters = try golden.shapes.keys.sorted().map { key in
                (key, Variable(try Tensor(shape: golden.shapes[key]!, repeating: 0)))
            }
            let average = try WeightAverage(decay: Float(c.decay), parameters: parameters)
            var records = c.records[...]
            for n in 1...(c.records.map(\.update).max() ?? 0) {
                for (_, p) in parameters {
                    p.value = try Tensor(shape: p.shape, scalars: (0..<p.value.count).map {
                        Float(sin(0.3 * Double(n) + 0.7 * Double($0)) + 0.01 * Double(n))
                    })
                }
                average.update(parameters, update: n)
                guard let record = records.first, record.update == n else { continue }
                records = records.dropFirst()
                XCTAssertEqual(Double(average.decay(atUpdate: n)), record.decay, accuracy: 1e-7, "decay \(c.decay), update \(n)")
                for (key, expected) in record.averages {
                    let got = try XCTUnwrap(average.averages[key]).scalars
                    for (g, e) in zip(got, expected) {
                        XCTAssertEqual(Double(g), e, accuracy: 2e-6, "decay \(c.decay), update \(n), \(key)")
                    }
                }
            }
            XCTAssertTrue(records.isEmpty)
        }
    }

    func testSwappingTheAverageInRestoresTheTrainedWeights() throws {
        let p = Variable(try Tensor(shape: [3], scalars: [1, 2, 3]))
        let average = try WeightAverage(decay: 0.5, parameters: [("w", p)])
        average.update([("w", p)], update: 1)
        p.value = try Tensor(shape: [3], scalars: [3, 4, 5])
        average.update([("w", p)], update: 2)                 // decay min(0.5, 2/11): a = 1 + (9/11)·2 …
        let inside = average.swappedIn([("w", p)]) { p.value.scalars }
        XCTAssertEqual(inside.map(Double.init), [1, 2, 3].map { $0 + 2 * 9.0 / 11 }, accuracy: 1e-6)
        XCTAssertEqual(p.value.scalars, [3, 4, 5])
        XCTAssertEqual(try XCTUnwrap(average.averages["w"]).scalars, inside)
        XCTAssertThrowsError(try WeightAverage(decay: 1, parameters: [("w", p)])) { XCTAssertTrue("\($0)".contains("--ema"), "\($0)") }
    }
}

private func XCTAssertEqual(_ a: [Double], _ b: [Double], accuracy: Double, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, file: file, line: line)
    for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: accuracy, file: file, line: line) }
}
