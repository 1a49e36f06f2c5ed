import Foundation
import TensorCore
import TestSupport
import XCTest
@testable import PNGImage

// Fixtures made by Tests/Reference/make_png_fixtures.py (a zlib PNG writer for every depth, and Pillow).
final class PNGImageTests: XCTestCase {
    private func fixture(_ name: String) throws -> URL {
        try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/" + name, withExtension: nil), name)
    }

    private func testImage(width: Int = 17, height: Int = 11) throws -> Image {
        var p = [UInt8]()
        for y in 0..<height { for x in 0..<width { p += [UInt8(x * 13 % 256), UInt8(y * 29 % 256), UInt8((x ^ y) * 7 % 256)] } }
        return try Image(width: width, height: height, pixels: p)
    }

    // MARK: - Decoding

    func testEveryColourTypeAndBitDepth() throws {
        let folder = try fixture("depth")
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".png") }.sorted()
        XCTAssertEqual(names.count, 46)
        var seen = Set<String>()
        for name in names {
            let decoded = try PNG.read(path: folder.appendingPathComponent(name).path)
            let expected = try Data(contentsOf: folder.appendingPathComponent(String(name.dropLast(4)) + ".rgb"))
            XCTAssertEqual(decoded.image.width, 13, name)
            XCTAssertEqual(decoded.image.height, 7, name)
            XCTAssertEqual(decoded.image.pixels, Array(expected), name)
            XCTAssertEqual(decoded.interlaced, name.contains("interlaced"), name)
            seen.insert("\(decoded.colorType)/\(decoded.bitDepth)/\(decoded.interlaced)")
        }
        // gray 1/2/4/8/16, rgb 8/16, palette 1/2/4/8, gray+alpha 8/16, rgba 8/16; each plain and interlaced.
        XCTAssertEqual(seen.count, 15 * 2)
    }

    func testTextChunksWrittenByPillow() throws {
        let decoded = try PNG.read(path: try fixture("text_pil.png").path)
        XCTAssertEqual(decoded.text, [
            PNGTextChunk(keyword: "parameters", text: "a photo of sks dog\nSteps: 20, Seed: 42"),
            PNGTextChunk(keyword: "Compressed", text: String(repeating: "zipped text ", count: 20)),
            PNGTextChunk(keyword: "Comment", text: "ünïcode ✓ 日本語"),
        ])
        XCTAssertEqual(decoded.image[3, 2].g, 200)
    }

    // MARK: - Bad input

    func testTruncatedCorruptAndNotPNG() throws {
        let good = try PNG.encode(try testImage())
        for cut in [8, 20, 33, good.count / 2, good.count - 13, good.count - 1] {
            XCTAssertThrowsError(try PNG.decode(Array(good.prefix(cut))), "cut at \(cut)") { error in
                guard case .truncated = error as? PNGError else { return XCTFail("cut at \(cut): \(error)") }
            }
        }
        XCTAssertThrowsError(try PNG.decode([UInt8]())) {
            XCTAssertEqual($0 as? PNGError, .notPNG(source: "PNG data", detail: "empty: zero bytes"))
        }
        XCTAssertThrowsError(try PNG.decode(Array("GIF89a not a png at all".utf8))) {
            XCTAssertEqual($0 as? PNGError, .notPNG(source: "PNG data", detail: "not a PNG: the PNG signature is missing"))
        }
        let crc = try fixture("bad_crc.png").path
        XCTAssertThrowsError(try PNG.read(path: crc)) { error in
            guard case .corrupt(let source, let detail) = error as? PNGError else { return XCTFail("\(error)") }
            XCTAssertEqual(source, crc)
            XCTAssertTrue(detail.contains("CRC"), detail)
        }
        XCTAssertThrowsError(try PNG.read(path: "/nonexistent/x.png")) { error in
            guard case .io = error as? PNGError else { return XCTFail("\(error)") }
        }
    }

    func testHeaderClaimingTooManyPixelsIsRefusedBeforeAllocating() throws {
        let path = try fixture("huge_header.png").path
        XCTAssertThrowsError(try PNG.read(path: path)) {
            XCTAssertEqual($0 as? PNGError, .tooLarge(source: path,
                detail: "the header claims 100000x100000 = 10000000000 pixels, more than the limit of 67108864"))
        }
        let small = try PNG.encode(try testImage())
        XCTAssertThrowsError(try PNG.decode(small, maxPixels: 100)) { error in
            guard case .tooLarge = error as? PNGError else { return XCTFail("\(error)") }
        }
        XCTAssertNoThrow(try PNG.decode(small, maxPixels: 17 * 11))
    }

    /// Inputs the fuzzer (Fuzz/run.sh png) found crashing, hanging or exhausting memory.
    func testFuzzRegressionInputsFailCleanly() throws {
        let folder = try fixture("fuzz")
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()
        XCTAssertFalse(names.isEmpty)
        for name in names {
            let data = try Data(contentsOf: folder.appendingPathComponent(name))
            XCTAssertThrowsError(try PNG.decode(data), name) { XCTAssertNotNil($0 as? PNGError, name) }
        }
        // A 4x3 image whose corrupt tEXt length made libpng allocate 1.7 GB before reading the chunk.
        XCTAssertThrowsError(try PNG.decode(Data(contentsOf: folder.appendingPathComponent("timeout-huge-chunk-length.png")))) {
            XCTAssertEqual($0 as? PNGError, .truncated(source: "PNG data",
                detail: "truncated: the chunk at byte 94 claims 1728053283 bytes but only 126 remain"))
        }
    }

    // MARK: - Encoding

    func testRoundTripRGBAndRGBAWithText() throws {
        let image = try testImage()
        let text = [PNGTextChunk(keyword: "parameters", text: "a dog\nNegative prompt: blurry\nSteps: 20, Seed: 42"),
                    PNGTextChunk(keyword: "Comment", text: "ünïcode ✓ 日本語 🙂"),
                    PNGTextChunk(keyword: "Empty", text: "")]
        let decoded = try PNG.decode(try PNG.encode(image, text: text))
        XCTAssertEqual(decoded.image, image)
        XCTAssertEqual(decoded.text, text)
        XCTAssertEqual(decoded.colorType, 2)
        XCTAssertEqual(decoded.bitDepth, 8)

        var rgba = [UInt8]()
        for i in 0..<(4 * 3) { rgba += [200, 100, 50, UInt8(i * 23)] }
        let withAlpha = try PNG.decode(try PNG.encode(pixels: rgba, width: 4, height: 3, channels: 4))
        XCTAssertEqual(withAlpha.colorType, 6)
        for i in 0..<12 {
            let a = UInt32(i * 23)
            XCTAssertEqual(withAlpha.image.pixels[3 * i], UInt8((200 * a + 255 * (255 - a) + 127) / 255))
        }
    }

    func testEncoderRejectsBadArguments() throws {
        XCTAssertThrowsError(try PNG.encode(pixels: [1, 2, 3], width: 2, height: 1, channels: 3))
        XCTAssertThrowsError(try PNG.encode(try testImage(), text: [PNGTextChunk(keyword: "", text: "x")]))
        XCTAssertThrowsError(try PNG.encode(try testImage(), text: [PNGTextChunk(keyword: "日本", text: "x")]))
        XCTAssertThrowsError(try PNG.encode(try testImage(), text: [PNGTextChunk(keyword: "k", text: "a\u{0}b")]))
    }

    func testWriteIsAtomicAndReadable() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("png-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("out.png").path
        let image = try testImage()
        try PNG.write(image, to: path, text: [PNGTextChunk(keyword: "k", text: "v")])
        try PNG.write(image, to: path)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), ["out.png"])
        XCTAssertEqual(try PNG.read(path: path).image, image)
        XCTAssertThrowsError(try PNG.write(image, to: folder.appendingPathComponent("no/such/dir.png").path))
    }

    // MARK: - Tensors and operations

    func testTensorConversions() throws {
        let image = try testImage(width: 5, height: 3)
        let chw = image.tensorCHW()
        XCTAssertEqual(chw.shape, [3, 3, 5])
        XCTAssertEqual(chw[flat: 1 * 15 + 2 * 5 + 4], Float(image[4, 2].g) / 127.5 - 1)
        let hwc = image.tensorHWC()
        XCTAssertEqual(hwc.shape, [3, 5, 3])
        XCTAssertEqual(hwc[flat: (2 * 5 + 4) * 3 + 2], Float(image[4, 2].b) / 127.5 - 1)
        XCTAssertEqual(try Image(tensorCHW: chw), image)
        XCTAssertEqual(try Image(tensorHWC: hwc), image)
        XCTAssertEqual(try Image(tensorCHW: try chw.reshaped([1, 3, 3, 5])), image)
        XCTAssertThrowsError(try Image(tensorCHW: Tensor(zeros: [2, 3, 5])))
        XCTAssertThrowsError(try Image(tensorHWC: Tensor(zeros: [3, 5, 4])))
        let extreme = try Tensor(shape: [1, 1, 3], scalars: [-7, 7, .nan])
        XCTAssertEqual(try Image(tensorHWC: extreme).pixels, [0, 255, 0])
    }

    func testCropsAndFlip() throws {
        let image = try testImage(width: 10, height: 7)
        let crop = try image.cropped(x: 2, y: 3, width: 4, height: 2)
        XCTAssertTrue(crop[1, 1] == image[3, 4])
        XCTAssertThrowsError(try image.cropped(x: 8, y: 0, width: 4, height: 2))
        // torchvision CenterCrop: top = round(1.5) = 2, left = round(3.0) = 3
        let center = try image.centerCropped(width: 4, height: 4)
        XCTAssertTrue(center[0, 0] == image[3, 2])
        var generator = SplitMix64(seed: 7)
        var again = SplitMix64(seed: 7)
        let a = try image.randomCropped(width: 5, height: 5, using: &generator)
        XCTAssertEqual(a, try image.randomCropped(width: 5, height: 5, using: &again))
        XCTAssertThrowsError(try image.randomCropped(width: 11, height: 5, using: &generator))
        let flipped = image.flippedHorizontally()
        XCTAssertTrue(flipped[0, 3] == image[9, 3])
        XCTAssertEqual(flipped.flippedHorizontally(), image)
    }

    func testGrid() throws {
        let a = try Image(width: 4, height: 3, color: (255, 0, 0)), b = try Image(width: 2, height: 2, color: (0, 0, 255))
        let sheet = try Image.grid([a, b, a], columns: 2, gap: 1, background: (0, 0, 0))
        XCTAssertEqual(sheet.width, 2 * 4 + 3)
        XCTAssertEqual(sheet.height, 2 * 3 + 3)
        XCTAssertTrue(sheet[0, 0] == (0, 0, 0))
        XCTAssertTrue(sheet[1, 1] == (255, 0, 0))
        XCTAssertTrue(sheet[6 + 1, 1] == (0, 0, 255))          // b centred horizontally in the second cell
        XCTAssertTrue(sheet[6, 1] == (0, 0, 0))
        XCTAssertTrue(sheet[5, 1] == (0, 0, 0))
        XCTAssertTrue(sheet[1, 5] == (255, 0, 0))
        XCTAssertThrowsError(try Image.grid([], columns: 2))
    }

    func testResizeMatchesPillow() throws {
        let source = try PNG.read(path: try fixture("resize/src.png").path).image
        for (name, filter) in [("lanczos", ResampleFilter.lanczos), ("bicubic", .bicubic), ("bilinear", .bilinear)] {
            for (w, h) in [(23, 17), (30, 47), (90, 70), (61, 20)] {
                let expected = try PNG.read(path: try fixture("resize/\(name)_\(w)x\(h).png").path).image
                let got = try source.resized(width: w, height: h, filter: filter)
                let worst = zip(got.pixels, expected.pixels).map { abs(Int($0) - Int($1)) }.max() ?? 0
                XCTAssertEqual(worst, 0, "\(name) \(w)x\(h)")
            }
        }
        XCTAssertEqual(try source.resized(width: 61, height: 47), source)
        XCTAssertThrowsError(try source.resized(width: 0, height: 5))
    }
}
