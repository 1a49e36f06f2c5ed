import XCTest
@testable import BaseModel

final class BPETrainerTests: XCTestCase {
    func testByteTableHas256DistinctSymbols() {
        XCTAssertEqual(Set(BPETrainer.byteSymbols).count, 256)
    }
}
