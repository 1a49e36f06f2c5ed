// Image: an 8-bit RGB picture, and its conversions to and from Tensors in [-1, 1].
//
// Pixels are interleaved RGB, rows top to bottom. Tensor conversions follow diffusers:
//   to a tensor:   x = v / 127.5 - 1                      (transforms.ToTensor + Normalize([0.5], [0.5]))
//   from a tensor: v = round(clamp((x + 1) / 2, 0, 1) * 255)   (VaeImageProcessor.numpy_to_pil)
import TensorCore

public struct Image: Equatable, Sendable {
    public let width: Int
    public let height: Int
    /// Interleaved RGB, `width * height * 3` bytes.
    public internal(set) var pixels: [UInt8]

    /// An image over `pixels` (interleaved RGB); throws when the count does not match the size.
    public init(width: Int, height: Int, pixels: [UInt8]) throws {
        guard Image.validSize(width, height), pixels.count % 3 == 0, pixels.count / 3 == width * height else {
            throw PNGError.invalidArgument("an RGB image of \(width)x\(height) needs \(width)x\(height)x3 bytes, got \(pixels.count)")
        }
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// An image of one colour.
    public init(width: Int, height: Int, color: (UInt8, UInt8, UInt8)) throws {
        guard Image.validSize(width, height) else {
            throw PNGError.invalidArgument("invalid image size \(width)x\(height)")
        }
        var p = [UInt8](repeating: 0, count: width * height * 3)
        for i in 0..<(width * height) { (p[3 * i], p[3 * i + 1], p[3 * i + 2]) = color }
        self.width = width
        self.height = height
        self.pixels = p
    }

    /// Both sides positive and at most 2^31 - 1 (PNG's limit), so byte counts cannot overflow.
    static func validSize(_ width: Int, _ height: Int) -> Bool {
        (1...Int(Int32.max)).contains(width) && (1...Int(Int32.max)).contains(height)
    }

    /// Internal: an image whose pixels the caller fills (sizes already checked).
    init(width: Int, height: Int, fill: (UnsafeMutablePointer<UInt8>) -> Void) {
        self.width = width
        self.height = height
        self.pixels = [UInt8](unsafeUninitializedCapacity: width * height * 3) { buffer, count in
            fill(buffer.baseAddress!)
            count = width * height * 3
        }
    }

    /// The RGB value at column `x`, row `y`.
    public subscript(x: Int, y: Int) -> (r: UInt8, g: UInt8, b: UInt8) {
        let i = (y * width + x) * 3
        return (pixels[i], pixels[i + 1], pixels[i + 2])
    }

    // MARK: - Tensors

    /// `[3, H, W]` in [-1, 1] (channel-first, as the checkpoints' reference code takes images).
    public func tensorCHW() -> Tensor {
        let plane = width * height
        return Tensor(shape: [3, height, width]) { out in
            pixels.withUnsafeBufferPointer { p in
                for i in 0..<plane {
                    for c in 0..<3 { out[c * plane + i] = Float(p[3 * i + c]) / 127.5 - 1 }
                }
            }
        }
    }

    /// `[H, W, 3]` in [-1, 1] (channel-last, the layout of the models' activations).
    public func tensorHWC() -> Tensor {
        Tensor(shape: [height, width, 3]) { out in
            pixels.withUnsafeBufferPointer { p in
                for i in 0..<p.count { out[i] = Float(p[i]) / 127.5 - 1 }
            }
        }
    }

    /// From `[3, H, W]` or `[1, 3, H, W]` in [-1, 1]; values outside are clamped, NaN becomes -1.
    public init(tensorCHW t: Tensor) throws {
        let s = t.shape.count == 4 && t.shape[0] == 1 ? Array(t.shape.dropFirst()) : t.shape
        guard s.count == 3, s[0] == 3, s[1] > 0, s[2] > 0 else {
            throw PNGError.invalidArgument("an image tensor must be [3, H, W] or [1, 3, H, W], got \(t.shape)")
        }
        let (h, w) = (s[1], s[2])
        let plane = w * h
        self.init(width: w, height: h) { out in
            t.withUnsafeBufferPointer { x in
                for i in 0..<plane {
                    for c in 0..<3 { out[3 * i + c] = Image.byte(x[c * plane + i]) }
                }
            }
        }
    }

    /// From `[H, W, 3]` or `[1, H, W, 3]` in [-1, 1]; values outside are clamped, NaN becomes -1.
    public init(tensorHWC t: Tensor) throws {
        let s = t.shape.count == 4 && t.shape[0] == 1 ? Array(t.shape.dropFirst()) : t.shape
        guard s.count == 3, s[2] == 3, s[0] > 0, s[1] > 0 else {
            throw PNGError.invalidArgument("an image tensor must be [H, W, 3] or [1, H, W, 3], got \(t.shape)")
        }
        self.init(width: s[1], height: s[0]) { out in
            t.withUnsafeBufferPointer { x in
                for i in 0..<x.count { out[i] = Image.byte(x[i]) }
            }
        }
    }

    @inline(__always)
    static func byte(_ x: Float) -> UInt8 {
        let v = ((x + 1) * 127.5).rounded()
        return v >= 255 ? 255 : (v > 0 ? UInt8(v) : 0)
    }
}
