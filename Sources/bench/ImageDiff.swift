// ImageDiff: `bench image-diff A.png B.png [--max-mean L] [--equal]`: how far two pictures of the same size
// are apart in 8-bit levels (mean and largest absolute difference over all RGB values). Exit 1 when the mean
// exceeds --max-mean or, with --equal, when any value differs; Scripts/check-cpus.sh compares the pictures
// that emulated CPUs make with the native one.
import Foundation
import PNGImage

func runImageDiff(_ args: [String]) {
    func fail(_ message: String, _ code: Int32) -> Never {
        FileHandle.standardError.write(Data("bench image-diff: \(message)\n".utf8))
        exit(code)
    }
    let paths = args.filter { !$0.hasPrefix("--") && Double($0) == nil }
    guard paths.count == 2 else { fail("usage: bench image-diff A.png B.png [--max-mean LEVELS] [--equal]", 2) }
    var maxMean = Double.infinity
    if let i = args.firstIndex(of: "--max-mean") {
        guard i + 1 < args.count, let v = Double(args[i + 1]) else { fail("--max-mean needs a number", 2) }
        maxMean = v
    }
    do {
        let a = try PNG.read(path: paths[0]).image, b = try PNG.read(path: paths[1]).image
        guard a.width == b.width, a.height == b.height else {
            fail("\(paths[0]) is \(a.width)x\(a.height), \(paths[1]) is \(b.width)x\(b.height)", 1)
        }
        var sum = 0, largest = 0, differing = 0
        for (x, y) in zip(a.pixels, b.pixels) {
            let d = abs(Int(x) - Int(y))
            sum += d; largest = max(largest, d); differing += d > 0 ? 1 : 0
        }
        let mean = Double(sum) / Double(a.pixels.count)
        print(String(format: "mean %.4f levels, max %d, %d of %d values differ", mean, largest, differing, a.pixels.count))
        if mean > maxMean { fail(String(format: "mean difference %.4f exceeds %.4f", mean, maxMean), 1) }
        if args.contains("--equal") && differing > 0 { fail("the pictures differ (--equal)", 1) }
    } catch {
        fail("\(error)", 1)
    }
}
