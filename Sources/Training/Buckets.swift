// Aspect-ratio buckets as kohya's sd-scripts makes them (library/model_util.py make_bucket_resolutions,
// library/train_util.py BucketManager.select_bucket): a table of sizes whose area is at most resolution²,
// sides multiples of the model's stride between a minimum and a maximum side; each image goes to the bucket
// whose aspect ratio is nearest its own, is resized to cover it and then cropped to it. With `noUpscale` the
// bucket is derived from the image itself (downscaled to at most resolution² pixels, sides rounded down to
// the stride), so small images are never enlarged.
import Foundation

/// A training size, width × height.
public struct BucketSize: Hashable, Codable, Comparable, Sendable, CustomStringConvertible {
    public var width: Int
    public var height: Int

    public init(width: Int, height: Int) {
        self.width = width
        self.height = height
    }

    /// Ordered as Python orders (width, height) tuples.
    public static func < (a: BucketSize, b: BucketSize) -> Bool { (a.width, a.height) < (b.width, b.height) }

    public var description: String { "\(width)×\(height)" }
}

/// The bucket options of a run (`--min-bucket`, `--max-bucket`, `--bucket-no-upscale`).
public struct BucketSettings: Codable, Equatable, Sendable {
    /// nil: `resolution / 2` rounded down to the stride (256 at SD's 512).
    public var minSide: Int?
    /// nil: `resolution × 2` (1024 at SD's 512).
    public var maxSide: Int?
    public var noUpscale = false

    public init(minSide: Int? = nil, maxSide: Int? = nil, noUpscale: Bool = false) {
        self.minSide = minSide
        self.maxSide = maxSide
        self.noUpscale = noUpscale
    }
}

/// Where one image goes: its bucket, the size it is resized to before the crop, and the aspect error.
public struct BucketChoice: Equatable, Sendable {
    public var bucket: BucketSize
    /// Covers the bucket (one side equal, the other at least as large).
    public var resized: BucketSize
    /// bucket aspect − image aspect (kohya's `ar_error`).
    public var aspectError: Double
}

public struct BucketTable: Sendable {
    public let resolution: Int
    public let stride: Int
    public let minSide: Int
    public let maxSide: Int
    public let noUpscale: Bool
    /// The predefined sizes, sorted (empty with `noUpscale`).
    public let sizes: [BucketSize]

    /// Checks and adjusts the settings as kohya does (minimum rounded down, maximum rounded up to the stride;
    /// minimum ≤ resolution ≤ maximum) and builds the table.
    public init(resolution: Int, stride: Int, settings: BucketSettings = BucketSettings()) throws {
        guard stride >= 1, resolution >= stride, resolution % stride == 0 else {
            throw TrainingError.invalidSettings("the resolution \(resolution) must be a multiple of the bucket stride \(stride)")
        }
        var minSide = settings.minSide ?? max(stride, resolution / 2 / stride * stride)
        var maxSide = settings.maxSide ?? resolution * 2
        minSide -= minSide % stride
        if maxSide % stride != 0 { maxSide += stride - maxSide % stride }
        guard minSide >= stride, minSide <= resolution else {
            throw TrainingError.invalidSettings("--min-bucket \(settings.minSide ?? minSide) must be at least \(stride) and at most "
                + "the resolution \(resolution)")
        }
        guard maxSide >= resolution else {
            throw TrainingError.invalidSettings("--max-bucket \(settings.maxSide ?? maxSide) must be at least the resolution \(resolution)")
        }
        self.resolution = resolution
        self.stride = stride
        self.minSide = minSide
        self.maxSide = maxSide
        noUpscale = settings.noUpscale
        sizes = noUpscale ? [] : Self.resolutions(maxWidth: resolution, maxHeight: resolution, minSide: minSide,
                                                  maxSide: maxSide, divisible: stride)
    }

    /// kohya's make_bucket_resolutions: the square of the largest multiple of `divisible` within the area,
    /// then for every width from `minSide` to `maxSide` the tallest height within the area (capped at
    /// `maxSide`, kept when at least `minSide`), and its transpose; sorted.
    public static func resolutions(maxWidth: Int, maxHeight: Int, minSide: Int, maxSide: Int, divisible: Int) -> [BucketSize] {
        let maxArea = maxWidth * maxHeight
        var sizes: Set<BucketSize> = []
        let square = Int((Double(maxArea).squareRoot() / Double(divisible)).rounded(.down)) * divisible
        sizes.insert(BucketSize(width: square, height: square))
        var width = minSide
        while width <= maxSide {
            let height = min(maxSide, (maxArea / width) / divisible * divisible)
            if height >= minSide {
                sizes.insert(BucketSize(width: width, height: height))
                sizes.insert(BucketSize(width: height, height: width))
            }
            width += divisible
        }
        return sizes.sorted()
    }

    /// kohya's BucketManager.select_bucket for an image of `width` × `height`.
    public func select(width: Int, height: Int) -> BucketChoice {
        let aspect = Double(width) / Double(height)
        let bucket: BucketSize, resized: BucketSize
        if !noUpscale {
            var chosen = BucketSize(width: width, height: height)
            if !sizes.contains(chosen) {
                // np.argmin: the first of equal errors
                var best = 0, bestError = Double.infinity
                for (i, s) in sizes.enumerated() {
                    let e = abs(Double(s.width) / Double(s.height) - aspect)
                    if e < bestError { (best, bestError) = (i, e) }
                }
                chosen = sizes[best]
            }
            let scale = aspect > Double(chosen.width) / Double(chosen.height)
                ? Double(chosen.height) / Double(height) : Double(chosen.width) / Double(width)
            bucket = chosen
            resized = BucketSize(width: Int(Double(width) * scale + 0.5), height: Int(Double(height) * scale + 0.5))
        } else {
            let maxArea = resolution * resolution
            if width * height > maxArea {
                let rw = (Double(maxArea) * aspect).squareRoot(), rh = Double(maxArea) / rw
                let bw = roundToStride(rw), bhInW = roundToStride(Double(bw) / aspect)
                let bh = roundToStride(rh), bwInH = roundToStride(Double(bh) * aspect)
                let arW = Double(bw) / Double(bhInW), arH = Double(bwInH) / Double(bh)
                resized = abs(arW - aspect) < abs(arH - aspect)
                    ? BucketSize(width: bw, height: Int(Double(bw) / aspect + 0.5))
                    : BucketSize(width: Int(Double(bh) * aspect + 0.5), height: bh)
            } else {
                resized = BucketSize(width: width, height: height)
            }
            bucket = BucketSize(width: resized.width - resized.width % stride, height: resized.height - resized.height % stride)
        }
        return BucketChoice(bucket: bucket, resized: resized,
                            aspectError: Double(bucket.width) / Double(bucket.height) - aspect)
    }

    /// kohya's round_to_steps: to the nearest integer, then down to the stride.
    private func roundToStride(_ x: Double) -> Int {
        let n = Int(x + 0.5)
        return n - n % stride
    }

    /// The size an image of `width` × `height` is resized to so that it covers `bucket` (one side equal,
    /// the aspect kept, rounded half up), as select_bucket computes it for a predefined bucket.
    public static func coverSize(width: Int, height: Int, bucket: BucketSize) -> BucketSize {
        let aspect = Double(width) / Double(height)
        let scale = aspect > Double(bucket.width) / Double(bucket.height)
            ? Double(bucket.height) / Double(height) : Double(bucket.width) / Double(width)
        return BucketSize(width: max(bucket.width, Int(Double(width) * scale + 0.5)),
                          height: max(bucket.height, Int(Double(height) * scale + 0.5)))
    }
}

/// The bucket stride of a model: one UNet cell at the bottom of its down path, in pixels
/// (2^(number of UNet levels − 1) × the VAE factor: 64 for SD).
public func bucketStride(unetLevels: Int, vaeFactor: Int) -> Int {
    (1 << max(0, unetLevels - 1)) * max(1, vaeFactor)
}
