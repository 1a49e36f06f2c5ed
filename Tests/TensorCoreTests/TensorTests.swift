import XCTest
@testable import TensorCore

final class TensorTests: XCTestCase {
    func testCopyOnWriteKeepsOriginal() throws {
        let a = try Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6])
        var b = a
        b.set(flat: 0, 42)
        XCTAssertEqual(a[flat: 0], 1)
        XCTAssertEqual(b[flat: 0], 42)
    }

    func testScalarCountMismatchThrows() {
        XCTAssertThrowsError(try Tensor(shape: [2, 2], scalars: [1, 2, 3])) { error in
            XCTAssertTrue("\(error)".contains("[2, 2]"), "\(error)")
        }
    }

    func testReshapeChecksCountAndOverflow() throws {
        let a = Tensor(zeros: [4, 6])
        XCTAssertEqual(try a.reshaped([2, 12]).shape, [2, 12])
        XCTAssertThrowsError(try a.reshaped([5, 5]))
        XCTAssertNil(Tensor.elementCount([Int.max, 2]))
        XCTAssertNil(Tensor.elementCount([-1, 2]))
    }
}
