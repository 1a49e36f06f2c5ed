// Aspect-ratio buckets against kohya's rules: the bucket tables and the bucket each image goes to, with and
// without --bucket-no-upscale, as Tests/Reference/make_bucket_goldens.py prints them
// (`/root/refenv/bin/python Tests/Reference/make_bucket_goldens.py`, output pasted below).
import Foundation
import TestSupport
import Training
import XCTest

final class BucketTests: XCTestCase {
    struct Golden: Decodable {
        struct Choice: Decodable { let bucket: [Int], resized: [Int], error: Double }
        struct Case: Decodable {
            let resolution: Int, min: Int, max: Int, stride: Int
            let sizes: [[Int]]
            let choices: [Choice]
            let no_upscale: [Choice?]
        }
        let images: [[Int]]
        let cases: [Case]
    }

    func testTablesAndChoicesMatchKohya() throws {
        let golden = try JSONDecoder().decode(Golden.self, from: Data(Self.goldenJSON.utf8))
        for c in golden.cases {
            for noUpscale in [false, true] {
                let table = try BucketTable(resolution: c.resolution, stride: c.stride,
                                            settings: BucketSettings(minSide: c.min, maxSide: c.max, noUpscale: noUpscale))
                if !noUpscale {
                    XCTAssertEqual(table.sizes.map { [$0.width, $0.height] }, c.sizes, "table at \(c.resolution)")
                }
                for (image, expected) in zip(golden.images, noUpscale ? c.no_upscale : c.choices.map { $0 }) {
                    let got = table.select(width: image[0], height: image[1])
                    guard let expected else {
                        XCTAssertTrue(got.bucket.width == 0 || got.bucket.height == 0, "\(image) at \(c.resolution)")
                        continue
                    }
                    let label = "\(image) at \(c.resolution), no upscale \(noUpscale)"
                    XCTAssertEqual([got.bucket.width, got.bucket.height], expected.bucket, label)
                    XCTAssertEqual([got.resized.width, got.resized.height], expected.resized, label)
                    XCTAssertEqual(got.aspectError, expected.error, accuracy: 1e-12, label)
                }
            }
        }
    }

    func testDefaultsAndSettingErrors() throws {
        let sd = try BucketTable(resolution: 512, stride: 64)
        XCTAssertEqual([sd.minSide, sd.maxSide], [256, 1024])
        XCTAssertEqual(sd.sizes.count, 17)
        XCTAssertTrue(sd.sizes.allSatisfy { $0.width * $0.height <= 512 * 512 && $0.width % 64 == 0 && $0.height % 64 == 0 })
        let toy = try BucketTable(resolution: 64, stride: 4)
        XCTAssertEqual([toy.minSide, toy.maxSide], [32, 128])
        // kohya rounds the minimum down and the maximum up to the stride
        let odd = try BucketTable(resolution: 512, stride: 64, settings: BucketSettings(minSide: 300, maxSide: 1000))
        XCTAssertEqual([odd.minSide, odd.maxSide], [256, 1024])
        XCTAssertThrowsError(try BucketTable(resolution: 512, stride: 64, settings: BucketSettings(minSide: 640)))
        XCTAssertThrowsError(try BucketTable(resolution: 512, stride: 64, settings: BucketSettings(maxSide: 448)))
        XCTAssertThrowsError(try BucketTable(resolution: 520, stride: 64))
        XCTAssertEqual(bucketStride(unetLevels: 4, vaeFactor: 8), 64)
        XCTAssertEqual(bucketStride(unetLevels: 3, vaeFactor: 1), 4)
    }

    static let goldenJSON = #"""
{"images": [[4032, 3024], [3024, 4032], [1920, 1080], [512, 512], [640, 448], [333, 1000], [100, 80], [64, 48], [48, 64], [40, 90]], "cases": [{"resolution": 512, "min": 256, "max": 1024, "stride": 64, "sizes": [[256, 832], [256, 896], [256, 960], [256, 1024], [320, 704], [320, 768], [384, 640], [448, 576], [512, 512], [576, 448], [640, 384], [704, 320], [768, 320], [832, 256], [896, 256], [960, 256], [1024, 256]], "choices": [{"bucket": [576, 448], "resized": [597, 448], "error": -0.04761904761904745}, {"bucket": [448, 576], "resized": [448, 597], "error": 0.02777777777777779}, {"bucket": [640, 384], "resized": [683, 384], "error": -0.11111111111111094}, {"bucket": [512, 512], "resized": [512, 512], "error": 0.0}, {"bucket": [576, 448], "resized": [640, 448], "error": -0.1428571428571428}, {"bucket": [256, 832], "resized": [277, 832], "error": -0.02530769230769231}, {"bucket": [576, 448], "resized": [576, 461], "error": 0.03571428571428581}, {"bucket": [576, 448], "resized": [597, 448], "error": -0.04761904761904745}, {"bucket": [448, 576], "resized": [448, 597], "error": 0.02777777777777779}, {"bucket": [320, 704], "resized": [320, 720], "error": 0.01010101010101011}], "no_upscale": [{"bucket": [512, 384], "resized": [512, 384], "error": 0.0}, {"bucket": [384, 512], "resized": [384, 512], "error": 0.0}, {"bucket": [640, 384], "resized": [683, 384], "error": -0.11111111111111094}, {"bucket": [512, 512], "resized": [512, 512], "error": 0.0}, {"bucket": [576, 384], "resized": [576, 403], "error": 0.0714285714285714}, {"bucket": [256, 768], "resized": [256, 769], "error": 0.0003333333333332966}, {"bucket": [64, 64], "resized": [100, 80], "error": -0.25}, null, null, null]}, {"resolution": 768, "min": 256, "max": 1024, "stride": 64, "sizes": [[256, 1024], [320, 1024], [384, 1024], [448, 1024], [512, 1024], [576, 960], [576, 1024], [640, 896], [704, 832], [768, 768], [832, 704], [896, 640], [960, 576], [1024, 256], [1024, 320], [1024, 384], [1024, 448], [1024, 512], [1024, 576]], "choices": [{"bucket": [896, 640], "resized": [896, 672], "error": 0.06666666666666665}, {"bucket": [640, 896], "resized": [672, 896], "error": -0.0357142857142857}, {"bucket": [1024, 576], "resized": [1024, 576], "error": 0.0}, {"bucket": [768, 768], "resized": [768, 768], "error": 0.0}, {"bucket": [896, 640], "resized": [914, 640], "error": -0.028571428571428692}, {"bucket": [320, 1024], "resized": [341, 1024], "error": -0.020500000000000018}, {"bucket": [832, 704], "resized": [880, 704], "error": -0.06818181818181812}, {"bucket": [896, 640], "resized": [896, 672], "error": 0.06666666666666665}, {"bucket": [640, 896], "resized": [672, 896], "error": -0.0357142857142857}, {"bucket": [448, 1024], "resized": [455, 1024], "error": -0.00694444444444442}], "no_upscale": [{"bucket": [832, 640], "resized": [853, 640], "error": -0.033333333333333215}, {"bucket": [640, 832], "resized": [640, 853], "error": 0.019230769230769273}, {"bucket": [1024, 576], "resized": [1024, 576], "error": 0.0}, {"bucket": [512, 512], "resized": [512, 512], "error": 0.0}, {"bucket": [640, 448], "resized": [640, 448], "error": 0.0}, {"bucket": [320, 960], "resized": [333, 1000], "error": 0.0003333333333332966}, {"bucket": [64, 64], "resized": [100, 80], "error": -0.25}, null, null, null]}, {"resolution": 1024, "min": 256, "max": 2048, "stride": 64, "sizes": [[256, 2048], [320, 2048], [384, 2048], [448, 2048], [512, 1856], [512, 1920], [512, 1984], [512, 2048], [576, 1664], [576, 1728], [576, 1792], [640, 1536], [640, 1600], [704, 1408], [704, 1472], [768, 1280], [768, 1344], [832, 1216], [896, 1152], [960, 1088], [1024, 1024], [1088, 960], [1152, 896], [1216, 832], [1280, 768], [1344, 768], [1408, 704], [1472, 704], [1536, 640], [1600, 640], [1664, 576], [1728, 576], [1792, 576], [1856, 512], [1920, 512], [1984, 512], [2048, 256], [2048, 320], [2048, 384], [2048, 448], [2048, 512]], "choices": [{"bucket": [1152, 896], "resized": [1195, 896], "error": -0.04761904761904745}, {"bucket": [896, 1152], "resized": [896, 1195], "error": 0.02777777777777779}, {"bucket": [1344, 768], "resized": [1365, 768], "error": -0.02777777777777768}, {"bucket": [1024, 1024], "resized": [1024, 1024], "error": 0.0}, {"bucket": [1216, 832], "resized": [1216, 851], "error": 0.03296703296703285}, {"bucket": [576, 1728], "resized": [576, 1730], "error": 0.0003333333333332966}, {"bucket": [1152, 896], "resized": [1152, 922], "error": 0.03571428571428581}, {"bucket": [1152, 896], "resized": [1195, 896], "error": -0.04761904761904745}, {"bucket": [896, 1152], "resized": [896, 1195], "error": 0.02777777777777779}, {"bucket": [640, 1536], "resized": [683, 1536], "error": -0.027777777777777735}], "no_upscale": [{"bucket": [1088, 832], "resized": [1109, 832], "error": -0.02564102564102555}, {"bucket": [832, 1088], "resized": [832, 1109], "error": 0.014705882352941124}, {"bucket": [1344, 768], "resized": [1365, 768], "error": -0.02777777777777768}, {"bucket": [512, 512], "resized": [512, 512], "error": 0.0}, {"bucket": [640, 448], "resized": [640, 448], "error": 0.0}, {"bucket": [320, 960], "resized": [333, 1000], "error": 0.0003333333333332966}, {"bucket": [64, 64], "resized": [100, 80], "error": -0.25}, null, null, null]}, {"resolution": 64, "min": 32, "max": 128, "stride": 4, "sizes": [[32, 116], [32, 120], [32, 124], [32, 128], [36, 104], [36, 108], [36, 112], [40, 96], [40, 100], [44, 88], [44, 92], [48, 80], [48, 84], [52, 76], [56, 72], [60, 68], [64, 64], [68, 60], [72, 56], [76, 52], [80, 48], [84, 48], [88, 44], [92, 44], [96, 40], [100, 40], [104, 36], [108, 36], [112, 36], [116, 32], [120, 32], [124, 32], [128, 32]], "choices": [{"bucket": [72, 56], "resized": [75, 56], "error": -0.04761904761904745}, {"bucket": [56, 72], "resized": [56, 75], "error": 0.02777777777777779}, {"bucket": [84, 48], "resized": [85, 48], "error": -0.02777777777777768}, {"bucket": [64, 64], "resized": [64, 64], "error": 0.0}, {"bucket": [76, 52], "resized": [76, 53], "error": 0.03296703296703285}, {"bucket": [36, 108], "resized": [36, 108], "error": 0.0003333333333332966}, {"bucket": [72, 56], "resized": [72, 58], "error": 0.03571428571428581}, {"bucket": [72, 56], "resized": [75, 56], "error": -0.04761904761904745}, {"bucket": [56, 72], "resized": [56, 75], "error": 0.02777777777777779}, {"bucket": [40, 96], "resized": [43, 96], "error": -0.027777777777777735}], "no_upscale": [{"bucket": [68, 52], "resized": [69, 52], "error": -0.02564102564102555}, {"bucket": [52, 68], "resized": [52, 69], "error": 0.014705882352941124}, {"bucket": [84, 48], "resized": [85, 48], "error": -0.02777777777777768}, {"bucket": [64, 64], "resized": [64, 64], "error": 0.0}, {"bucket": [76, 52], "resized": [76, 53], "error": 0.03296703296703285}, {"bucket": [36, 108], "resized": [36, 108], "error": 0.0003333333333332966}, {"bucket": [68, 56], "resized": [70, 56], "error": -0.03571428571428581}, {"bucket": [64, 48], "resized": [64, 48], "error": 0.0}, {"bucket": [48, 64], "resized": [48, 64], "error": 0.0}, {"bucket": [40, 88], "resized": [40, 90], "error": 0.01010101010101011}]}]}
"""#
}
