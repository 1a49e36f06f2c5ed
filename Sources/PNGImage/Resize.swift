// Resize: antialiased resampling that reproduces (bit for bit, see PNGImageTests) Pillow's `Image.resize(size, resample)`.
//
// This implementation matches Pillow's libImaging/Resample.c (ImagingResample, 8 bits per channel):
// separable convolution, horizontal pass then vertical, each output sample a normalised filter
// window stretched by the scale when shrinking (support × max(in/out, 1)), coefficients in 22-bit
// fixed point, each pass rounded and clipped to 8 bits.
import Foundation
import TensorCore

/// Resampling filter (Pillow's names and kernels).
public enum ResampleFilter: Sendable {
    /// Lanczos, a = 3 (`Image.LANCZOS`).
    case lanczos
    /// Keys cubic, a = −0.5 (`Image.BICUBIC`).
    case bicubic
    /// Triangle (`Image.BILINEAR`).
    case bilinear

    var support: Double {
        switch self {
        case .lanczos: return 3
        case .bicubic: return 2
        case .bilinear: return 1
        }
    }

    func weight(_ x: Double) -> Double {
        switch self {
        case .lanczos:
            guard -3 <= x && x < 3 else { return 0 }
            return ResampleFilter.sinc(x) * ResampleFilter.sinc(x / 3)
        case .bicubic:
            let a = -0.5, t = abs(x)
            if t < 1 { return ((a + 2) * t - (a + 3)) * t * t + 1 }
            if t < 2 { return (((t - 5) * t + 8) * t - 4) * a }
            return 0
        case .bilinear:
            let t = abs(x)
            return t < 1 ? 1 - t : 0
        }
    }

    private static func sinc(_ x: Double) -> Double {
        if x == 0 { return 1 }
        let px = x * Double.pi
        return sin(px) / px
    }
}

/// Fixed-point filter taps for one axis: output i reads `count[i]` inputs from `first[i]`.
struct ResampleKernel {
    static let precisionBits = 22
    let first: [Int]
    let count: [Int]
    let taps: Int
    let weights: [Int32]   // [outSize * taps]

    init(inSize: Int, outSize: Int, filter: ResampleFilter) {
        let scale = Double(inSize) / Double(outSize)
        let filterScale = max(scale, 1)
        let support = filter.support * filterScale
        taps = Int(support.rounded(.up)) * 2 + 1
        var first = [Int](repeating: 0, count: outSize)
        var count = [Int](repeating: 0, count: outSize)
        var weights = [Int32](repeating: 0, count: outSize * taps)
        var k = [Double](repeating: 0, count: taps)
        for i in 0..<outSize {
            let center = (Double(i) + 0.5) * scale
            let lo = max(Int(center - support + 0.5), 0)
            let n = min(Int(center + support + 0.5), inSize) - lo
            var total = 0.0
            for j in 0..<n {
                k[j] = filter.weight((Double(j + lo) - center + 0.5) / filterScale)
                total += k[j]
            }
            for j in 0..<n {
                let w = total != 0 ? k[j] / total : k[j]
                let scaled = w * Double(1 << ResampleKernel.precisionBits)
                weights[i * taps + j] = Int32(scaled < 0 ? (scaled - 0.5).rounded(.towardZero) : (scaled + 0.5).rounded(.towardZero))
            }
            first[i] = lo
            count[i] = n
        }
        self.first = first
        self.count = count
        self.weights = weights
    }

    @inline(__always)
    static func clip8(_ v: Int32) -> UInt8 {
        if v >= Int32(255) << precisionBits { return 255 }
        if v <= 0 { return 0 }
        return UInt8(truncatingIfNeeded: v >> precisionBits)
    }
}

extension Image {
    /// The image resampled to `width` × `height` with `filter`, as Pillow's `Image.resize` does.
    public func resized(width newWidth: Int, height newHeight: Int, filter: ResampleFilter = .lanczos) throws -> Image {
        guard newWidth > 0, newHeight > 0, !newWidth.multipliedReportingOverflow(by: newHeight).overflow,
              newWidth * newHeight <= PNG.defaultMaxPixels else {
            throw PNGError.invalidArgument("cannot resize to \(newWidth)x\(newHeight)")
        }
        if newWidth == width && newHeight == height { return self }
        var current = self
        if newWidth != width { current = current.horizontalPass(to: newWidth, filter: filter) }
        if newHeight != height { current = current.verticalPass(to: newHeight, filter: filter) }
        return current
    }

    private func horizontalPass(to outWidth: Int, filter: ResampleFilter) -> Image {
        let kernel = ResampleKernel(inSize: width, outSize: outWidth, filter: filter)
        let (inWidth, taps) = (width, kernel.taps)
        return Image(width: outWidth, height: height) { out in
            pixels.withUnsafeBufferPointer { src in
                kernel.weights.withUnsafeBufferPointer { w in
                    let workers = Parallel.workers(for: height * outWidth * taps, minWorkPerThread: 1 << 16)
                    Parallel.forSlices(count: height, workers: workers) { _, rows in
                        for y in rows {
                            let row = src.baseAddress! + y * inWidth * 3
                            let dst = out + y * outWidth * 3
                            for x in 0..<outWidth {
                                let k = w.baseAddress! + x * taps
                                let p = row + kernel.first[x] * 3
                                var (r, g, b) = (Int32(1) << 21, Int32(1) << 21, Int32(1) << 21)
                                for j in 0..<kernel.count[x] {
                                    r &+= Int32(p[3 * j]) &* k[j]
                                    g &+= Int32(p[3 * j + 1]) &* k[j]
                                    b &+= Int32(p[3 * j + 2]) &* k[j]
                                }
                                dst[3 * x] = ResampleKernel.clip8(r)
                                dst[3 * x + 1] = ResampleKernel.clip8(g)
                                dst[3 * x + 2] = ResampleKernel.clip8(b)
                            }
                        }
                    }
                }
            }
        }
    }

    private func verticalPass(to outHeight: Int, filter: ResampleFilter) -> Image {
        let kernel = ResampleKernel(inSize: height, outSize: outHeight, filter: filter)
        let (rowBytes, taps) = (width * 3, kernel.taps)
        return Image(width: width, height: outHeight) { out in
            pixels.withUnsafeBufferPointer { src in
                kernel.weights.withUnsafeBufferPointer { w in
                    let workers = Parallel.workers(for: outHeight * rowBytes * taps, minWorkPerThread: 1 << 16)
                    Parallel.forSlices(count: outHeight, workers: workers) { _, rows in
                        let accumulator = UnsafeMutablePointer<Int32>.allocate(capacity: rowBytes)
                        defer { accumulator.deallocate() }
                        for y in rows {
                            accumulator.initialize(repeating: Int32(1) << 21, count: rowBytes)
                            for j in 0..<kernel.count[y] {
                                let k = w[y * taps + j]
                                let line = src.baseAddress! + (kernel.first[y] + j) * rowBytes
                                for i in 0..<rowBytes { accumulator[i] &+= Int32(line[i]) &* k }
                            }
                            let dst = out + y * rowBytes
                            for i in 0..<rowBytes { dst[i] = ResampleKernel.clip8(accumulator[i]) }
                        }
                    }
                }
            }
        }
    }
}
