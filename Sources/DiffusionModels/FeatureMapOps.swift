// Data-movement operations on NHWC feature maps that the UNet and VAE need beyond Autograd's shape ops,
// with their VJPs: nearest up-sampling to an arbitrary size (Upsample2D when the UNet's input is not a
// multiple of its down-sampling factor, as torch's `F.interpolate(size:, mode="nearest")`), and zero
// padding of the bottom/right edge (the VAE encoder's Downsample2D, `F.pad(x, (0, 1, 0, 1))`).
// Pure copies: no arithmetic worth a kernel.
import Autograd
import TensorCore

enum FeatureMapOps {
    /// torch's nearest source index for output index `o` (`upsample_nearest` with an explicit size).
    static func nearestSource(_ o: Int, input: Int, output: Int) -> Int {
        if output == 2 * input { return o >> 1 }
        let scale = Float(input) / Float(output)
        return min(Int((Float(o) * scale).rounded(.down)), input - 1)
    }
}

/// Nearest-neighbour resize of NHWC `x` [N, H, W, C] to [N, height, width, C] (torch `mode="nearest"`).
func upsampleNearest(_ x: Variable, height: Int, width: Int) throws -> Variable {
    guard x.shape.count == 4, height > 0, width > 0 else {
        throw AutogradError.invalidInput("upsampleNearest: expected NHWC input and a positive size, got \(x.shape) → \(height)×\(width)")
    }
    let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let rowSource = (0..<height).map { FeatureMapOps.nearestSource($0, input: h, output: height) }
    let colSource = (0..<width).map { FeatureMapOps.nearestSource($0, input: w, output: width) }
    let y = Tensor(shape: [n, height, width, c]) { out in
        x.value.withUnsafeBufferPointer { src in
            for b in 0..<n {
                for oy in 0..<height {
                    let srcRow = src.baseAddress! + ((b * h + rowSource[oy]) * w) * c
                    let dstRow = out.baseAddress! + ((b * height + oy) * width) * c
                    for ox in 0..<width { (dstRow + ox * c).update(from: srcRow + colSource[ox] * c, count: c) }
                }
            }
        }
    }
    let shape = x.shape
    return Variable.result(y, of: "upsampleNearest", inputs: [x]) { g in
        let dx = Tensor(shape: shape) { dst in
            dst.initialize(repeating: 0)
            g.withUnsafeBufferPointer { src in
                for b in 0..<n {
                    for oy in 0..<height {
                        let dstRow = dst.baseAddress! + ((b * h + rowSource[oy]) * w) * c
                        let srcRow = src.baseAddress! + ((b * height + oy) * width) * c
                        for ox in 0..<width {
                            let d = dstRow + colSource[ox] * c, s = srcRow + ox * c
                            for i in 0..<c { d[i] += s[i] }
                        }
                    }
                }
            }
        }
        return [dx]
    }
}

/// One row of zeros below and one column of zeros right of NHWC `x`: [N, H, W, C] → [N, H+1, W+1, C].
func padBottomRight(_ x: Variable) throws -> Variable {
    guard x.shape.count == 4 else { throw AutogradError.invalidInput("padBottomRight: expected NHWC input, got \(x.shape)") }
    let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let y = Tensor(shape: [n, h + 1, w + 1, c]) { out in
        out.initialize(repeating: 0)
        x.value.withUnsafeBufferPointer { src in
            for b in 0..<n {
                for r in 0..<h {
                    (out.baseAddress! + ((b * (h + 1) + r) * (w + 1)) * c)
                        .update(from: src.baseAddress! + ((b * h + r) * w) * c, count: w * c)
                }
            }
        }
    }
    let shape = x.shape
    return Variable.result(y, of: "padBottomRight", inputs: [x]) { g in
        let dx = Tensor(shape: shape) { dst in
            g.withUnsafeBufferPointer { src in
                for b in 0..<n {
                    for r in 0..<h {
                        (dst.baseAddress! + ((b * h + r) * w) * c)
                            .update(from: src.baseAddress! + ((b * (h + 1) + r) * (w + 1)) * c, count: w * c)
                    }
                }
            }
        }
        return [dx]
    }
}
