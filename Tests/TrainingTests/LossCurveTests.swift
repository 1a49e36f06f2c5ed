import PNGImage
import XCTest
@testable import Training

final class LossCurveTests: XCTestCase {
    func testCurveDrawsBothSeriesAndLabels() throws {
        let losses: [Float] = (0..<100).map { 1 / Float($0 + 1) + (Float($0 % 7) * 0.01) }
        let image = try LossCurve.image(losses, width: 320, height: 160)
        XCTAssertEqual(image.width, 320)
        XCTAssertEqual(image.height, 160)
        var ema = 0, raw = 0, black = 0
        for y in 0..<160 {
            for x in 0..<320 {
                let p = image[x, y]
                if p == (180, 30, 30) { ema += 1 }
                if p == (150, 190, 235) { raw += 1 }
                if p == (0, 0, 0) { black += 1 }
            }
        }
        XCTAssertGreaterThan(ema, 100)
        XCTAssertGreaterThan(raw, 50)
        XCTAssertGreaterThan(black, 2 * (160 + 320))   // axes, ticks and label glyphs
        // NaN steps are skipped, not drawn; a run of one step gives an empty frame instead of a failure.
        XCTAssertNoThrow(try LossCurve.image([1, .nan, 0.5]))
        XCTAssertNoThrow(try LossCurve.image([1]))
    }
}
