// ImageDiff: `bench image-diff A.png B.png [--max-mean L] [--equal]`: how far two pictures of the same size
// are apart in 8-bit levels (mean and largest absolute difference over all RGB values). Fails (exit 1) when
// the mean exceeds --max-mean or, with --equal, when any value differs; Scripts/check-cpus.sh compares the
// pictures that emulated CPUs make with the native one.
import CLI
import Foundation
import PNGImage

func runImageDiff(_ a: BenchArguments) throws {
    let paths = a.parsed.positionals
    guard paths.count == 2 else { throw CommandLineError.usage("image-diff needs two PNG files, got \(paths.count)") }
    let maxMean = try a.parsed.double("max-mean") ?? .infinity
    let first = try PNG.read(path: paths[0]).image, second = try PNG.read(path: paths[1]).image
    guard first.width == second.width, first.height == second.height else {
        throw CommandLineError.failure("\(paths[0]) is \(first.width)x\(first.height), \(paths[1]) is "
                                       + "\(second.width)x\(second.height)")
    }
    var sum = 0, largest = 0, differing = 0
    for (x, y) in zip(first.pixels, second.pixels) {
        let d = abs(Int(x) - Int(y))
        sum += d; largest = max(largest, d); differing += d > 0 ? 1 : 0
    }
    let mean = Double(sum) / Double(first.pixels.count)
    print(String(format: "mean %.4f levels, max %d, %d of %d values differ", mean, largest, differing, first.pixels.count))
    if mean > maxMean { throw CommandLineError.failure(String(format: "mean difference %.4f exceeds %.4f", mean, maxMean)) }
    if a.has("--equal") && differing > 0 { throw CommandLineError.failure("the pictures differ (--equal)") }
}
