// What one text-to-image run is asked to do, and the adapters (LoRA) it carries.

import Foundation
import PNGImage
import SafeTensors
import Schedulers

/// Which generator draws the initial latents and every sampler noise.
public enum RandomSourceKind: String, CaseIterable, Codable, Sendable {
    /// The project's Philox4x32-10 stream (`PhiloxRandom`): same seed → same picture on every thread count.
    case native
    /// `torch.randn(…, generator=torch.Generator("cpu").manual_seed(seed))` in diffusers' draw order:
    /// the same seed and settings give the picture diffusers gives.
    case torch
}

/// An adapter applied to the models for a run (e.g. a LoRA file). The pipeline records it in the
/// PNG's `parameters` text (`Lora hashes`); applying it to the models is the adapters' own code's job.
public struct AdapterReference: Equatable, Codable, Sendable {
    /// The adapter's name (its file name without extension, as `<lora:name:weight>` spells it).
    public var name: String
    /// Multiplier of the adapter's α/r scale.
    public var weight: Double
    /// Short SHA-256 of the adapter file (A1111 prints 12 hex digits), when known.
    public var hash: String?

    public init(name: String, weight: Double = 1, hash: String? = nil) {
        self.name = name
        self.weight = weight
        self.hash = hash
    }
}

/// How an init picture is fitted to the requested size (diffusers' `VaeImageProcessor.preprocess` `resize_mode`).
public enum InitImageResize: String, CaseIterable, Codable, Sendable {
    /// Resized to exactly width × height, ignoring the aspect ratio (`"default"`; A1111's "Just resize").
    case stretch
    /// Resized to cover width × height keeping the aspect ratio, then centre-cropped (`"crop"`; A1111's
    /// "Crop and resize").
    case crop
}

/// The picture an image-to-image run starts from, as its PNG text records it (A1111's img2img fields).
public struct InitImageReference: Equatable, Codable, Sendable {
    /// Fraction of the inference steps that are run, in (0, 1] (A1111's `Denoising strength`, diffusers'
    /// `strength`): the image is noised to the level of step `steps − int(steps · strength)`.
    public var strength: Double
    /// First 10 hex digits of the init image file's SHA-256, when known.
    public var hash: String?
    /// Where the init image was read from, when known.
    public var path: String?
    /// How the picture is fitted to the run's size.
    public var resize: InitImageResize

    public init(strength: Double, hash: String? = nil, path: String? = nil, resize: InitImageResize = .stretch) {
        self.strength = strength
        self.hash = hash
        self.path = path
        self.resize = resize
    }
}

/// SDXL's micro-conditioning (diffusers' `original_size`, `crops_coords_top_left`, `target_size`), in pixels.
/// A nil field takes diffusers' default: the picture's own size for both sizes, (0, 0) for the crop.
public struct SizeConditioning: Equatable, Codable, Sendable {
    /// (width, height) of the picture the model should pretend it saw before resizing.
    public var originalSize: [Int]?
    /// (top, left) of the crop the picture should look taken from.
    public var cropTopLeft: [Int]?
    /// (width, height) the picture is meant for.
    public var targetSize: [Int]?

    public init(originalSize: [Int]? = nil, cropTopLeft: [Int]? = nil, targetSize: [Int]? = nil) {
        self.originalSize = originalSize
        self.cropTopLeft = cropTopLeft
        self.targetSize = targetSize
    }

    /// diffusers' `add_time_ids` for a width × height picture:
    /// `list(original_size + crops_coords_top_left + target_size)` with sizes as (height, width).
    public func timeIds(width: Int, height: Int) -> [Float] {
        let original = originalSize ?? [width, height], target = targetSize ?? [width, height]
        let crop = cropTopLeft ?? [0, 0]
        return [original[1], original[0], crop[0], crop[1], target[1], target[0]].map(Float.init)
    }
}

/// Parameters of one text-to-image run (image-to-image with `initImage`). Defaults are documented per field; `nil` means "from the model".
public struct GenerationParameters: Equatable, Codable, Sendable {
    public var prompt: String
    /// Empty: the unconditional embedding `encode("")`.
    public var negativePrompt: String
    /// Sampler steps (default 20).
    public var steps: Int
    /// Classifier-free guidance scale g (default `defaultGuidanceScale`); g ≤ 1 runs without guidance, as diffusers does.
    public var guidanceScale: Double
    /// diffusers' default guidance scale, 7.5 (for models whose folder recommends none).
    public static let defaultGuidanceScale = 7.5
    /// diffusers' `guidance_rescale` φ (Lin et al. 2024, "Common Diffusion Noise Schedules and Sample Steps are
    /// Flawed", §3.4): the guided prediction is scaled to the standard deviation of the prompt's own prediction,
    /// blended φ : 1 − φ with the plain guided one; 0 (default) is plain guidance, 0.7 the paper's choice against
    /// the over-exposed, over-saturated pictures high guidance gives. Used only with guidance (g > 1).
    public var guidanceRescale: Double
    /// Default `dpm++2m`.
    public var sampler: SamplerKind
    /// Karras σ spacing; nil: the scheduler config's `use_karras_sigmas` where the sampler supports it.
    public var karras: Bool?
    public var seed: UInt64
    /// Default `.native`.
    public var rng: RandomSourceKind
    /// Image size in pixels; nil: the UNet's `sample_size` times the VAE's downsampling factor.
    public var width: Int?
    public var height: Int?
    /// Text-encoder layers skipped from the end, diffusers' `clip_skip` (0: last layer; A1111's
    /// "Clip skip: 2" is 1 here).
    public var clipSkip: Int
    /// Images drawn together from one seed (diffusers' `num_images_per_prompt`).
    public var numImages: Int
    /// DDIM's η (0: deterministic).
    public var eta: Double
    /// Adapters active for this run, recorded in the PNG text.
    public var adapters: [AdapterReference]
    /// Image-to-image: the run starts from this picture (passed with the request) noised to `strength`;
    /// nil: text-to-image from noise.
    public var initImage: InitImageReference?
    /// SDXL's size and crop conditioning; nil: diffusers' defaults. Ignored by SD-1.x/2.x models.
    public var sizeConditioning: SizeConditioning?

    public init(prompt: String, negativePrompt: String = "", steps: Int = 20, guidanceScale: Double = defaultGuidanceScale,
                sampler: SamplerKind = .dpmpp2m, karras: Bool? = nil, seed: UInt64 = 0, rng: RandomSourceKind = .native,
                width: Int? = nil, height: Int? = nil, clipSkip: Int = 0, numImages: Int = 1, eta: Double = 0,
                adapters: [AdapterReference] = [], initImage: InitImageReference? = nil,
                sizeConditioning: SizeConditioning? = nil, guidanceRescale: Double = 0) {
        self.prompt = prompt
        self.negativePrompt = negativePrompt
        self.steps = steps
        self.guidanceScale = guidanceScale
        self.guidanceRescale = guidanceRescale
        self.sampler = sampler
        self.karras = karras
        self.seed = seed
        self.rng = rng
        self.width = width
        self.height = height
        self.clipSkip = clipSkip
        self.numImages = numImages
        self.eta = eta
        self.adapters = adapters
        self.initImage = initImage
        self.sizeConditioning = sizeConditioning
    }
}

extension InitImageReference {
    /// The `Init image hash` of a file: the first 10 hex digits of its SHA-256 (as A1111's model hash).
    public static func hash(ofFile path: String) throws -> String {
        String(try SHA256.hexDigest(ofFile: path).prefix(10))
    }
}

extension Image {
    /// The picture fitted to width × height as diffusers' `VaeImageProcessor.resize` does (Pillow's Lanczos):
    /// `.stretch` resizes; `.crop` is `_resize_and_crop`:
    ///     src_w = width if ratio > src_ratio else image.width * height // image.height   (src_h likewise)
    ///     resized = image.resize((src_w, src_h)); paste at (width // 2 - src_w // 2, height // 2 - src_h // 2)
    public func fitted(width w: Int, height h: Int, mode: InitImageResize) throws -> Image {
        if width == w && height == h { return self }
        switch mode {
        case .stretch:
            return try resized(width: w, height: h)
        case .crop:
            let wider = Double(w) / Double(h) > Double(width) / Double(height)
            let srcW = wider ? w : width * h / height, srcH = wider ? height * w / width : h
            let big = srcW == width && srcH == height ? self : try resized(width: srcW, height: srcH)
            return try big.cropped(x: srcW / 2 - w / 2, y: srcH / 2 - h / 2, width: w, height: h)
        }
    }
}
