// WorldDataset: an indexable, deterministic stream of (image, caption) pairs for training.
//
// Item i depends only on (seed, i): its scene and caption are drawn from a Philox stream keyed by a mix
// of the two, so any item can be rendered alone, in any order, on any thread, and always gives the same
// bytes. Images come as NHWC tensors in [-1, 1] (the diffusers convention, `Image.tensorHWC`). Captions
// leave out colour or place as often as `omission` says (the draw follows the caption's, so a dataset
// without omission gives the captions it always gave); with `usualColors`, an object whose colour the
// caption leaves out wears its usual colour (the layout, drawn before, is the same).
import PNGImage
import TensorCore

/// One rendered item.
public struct WorldSample: Sendable {
    public let scene: Scene
    public let caption: String
    public let image: Image
}

public struct WorldDataset: Sendable {
    public let seed: UInt64
    public let options: WorldOptions
    /// Image side in pixels.
    public let size: Int
    /// How often captions leave out the colour and the place.
    public let omission: CaptionOmission

    /// Throws when `size` is not in 1...4096.
    public init(seed: UInt64, options: WorldOptions = .base, size: Int = 64, omission: CaptionOmission = .none) throws {
        guard (1...4096).contains(size) else { throw WorldError.invalidArgument("image size \(size) is not in 1...4096") }
        self.seed = seed
        self.options = options
        self.size = size
        self.omission = omission
    }

    /// The random stream of item `index`.
    func stream(_ index: Int) -> PhiloxRandom {
        var z = seed ^ (UInt64(bitPattern: Int64(index)) &* 0x9E37_79B9_7F4A_7C15)
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return PhiloxRandom(seed: z ^ (z >> 31))
    }

    /// The scene and caption of item `index` (no rendering).
    public func describe(_ index: Int) -> (scene: Scene, caption: String) {
        var rng = stream(index)
        var scene = Scene.random(using: &rng, options: options)
        let caption = Caption.random(&scene.labels, omitting: omission, using: &rng)
        return (scene, caption)
    }

    /// Item `index`, rendered.
    public func sample(at index: Int) throws -> WorldSample {
        let (scene, caption) = describe(index)
        return WorldSample(scene: scene, caption: caption, image: try scene.render(size: size))
    }

    /// Items `indices` as one batch: images [N, size, size, 3] in [-1, 1], captions and labels.
    public func batch(_ indices: [Int]) throws -> (images: Tensor, captions: [String], labels: [SceneLabels]) {
        let samples = try indices.map { try sample(at: $0) }
        let plane = size * size * 3
        let images = Tensor(shape: [indices.count, size, size, 3]) { out in
            for (n, s) in samples.enumerated() {
                s.image.pixels.withUnsafeBufferPointer { p in
                    for i in 0..<plane { out[n * plane + i] = Float(p[i]) / 127.5 - 1 }
                }
            }
        }
        return (images, samples.map(\.caption), samples.map(\.scene.labels))
    }
}
