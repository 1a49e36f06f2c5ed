// SchedulerConfig: the `scheduler/scheduler_config.json` of a diffusers pipeline folder.
//
// Keys absent from the file stay nil here and are resolved per sampler with the defaults of the
// diffusers class that sampler ports, exactly as `SomeScheduler.from_config(config)` does (e.g. PNDM
// without `skip_prk_steps` runs PRK warm-up steps; Euler without `timestep_spacing` uses `linspace`).
// A missing file means Stable Diffusion 1.x's configuration (`SchedulerConfig.stableDiffusion1`).

import Foundation
import TensorCore

/// How betas are laid out over the training timesteps.
public enum BetaSchedule: String, Codable, Sendable, CaseIterable {
    /// β = linspace(β₀, β₁).
    case linear
    /// β = linspace(√β₀, √β₁)² (Stable Diffusion).
    case scaledLinear = "scaled_linear"
    /// Glide cosine schedule, β capped at 0.999.
    case squaredcosCapV2 = "squaredcos_cap_v2"
}

/// What the model predicts.
public enum PredictionType: String, Codable, Sendable, CaseIterable {
    /// The added noise ε.
    case epsilon
    /// The velocity v = √ᾱ·ε − √(1−ᾱ)·x₀.
    case vPrediction = "v_prediction"
    /// The clean sample x₀.
    case sample
}

/// How inference timesteps are picked from the training timesteps.
public enum TimestepSpacing: String, Codable, Sendable, CaseIterable {
    /// Evenly from 0 up to (steps−1)·(N / steps), plus `steps_offset`.
    case leading
    /// Evenly down from N−1.
    case trailing
    /// linspace(0, N−1, steps).
    case linspace
}

/// DDPM's variance choice (`variance_type`); the learned variants need a model with 2× channels.
public enum DDPMVarianceType: String, Codable, Sendable, CaseIterable {
    case fixedSmall = "fixed_small"
    case fixedLarge = "fixed_large"
}

/// Last sigma of a sigma schedule (`final_sigmas_type`).
public enum FinalSigmaType: String, Codable, Sendable, CaseIterable {
    case zero
    case sigmaMin = "sigma_min"
}

public enum SchedulerError: Error, CustomStringConvertible, Equatable {
    /// The configuration cannot be used; the message names the key and the value.
    case invalidConfig(String)
    /// A step count or step index outside what the schedule allows.
    case invalidStep(String)
    /// Tensors that must share a shape do not.
    case shapeMismatch(String)
    /// The scheduler configuration file could not be read or decoded.
    case unreadable(path: String, reason: String)

    public var description: String {
        switch self {
        case .invalidConfig(let m): return "scheduler config: \(m)"
        case .invalidStep(let m): return "scheduler step: \(m)"
        case .shapeMismatch(let m): return "scheduler shapes: \(m)"
        case .unreadable(let path, let reason): return "cannot read scheduler config \(path): \(reason)"
        }
    }
}

/// `scheduler_config.json`, with diffusers' key names. Every field is optional: nil means "absent".
public struct SchedulerConfig: Codable, Equatable, Sendable {
    public var className: String?
    public var numTrainTimesteps: Int?
    public var betaStart: Double?
    public var betaEnd: Double?
    public var betaSchedule: BetaSchedule?
    public var trainedBetas: [Double]?
    public var predictionType: PredictionType?
    public var timestepSpacing: TimestepSpacing?
    public var stepsOffset: Int?
    public var setAlphaToOne: Bool?
    public var clipSample: Bool?
    public var clipSampleRange: Double?
    public var skipPrkSteps: Bool?
    public var useKarrasSigmas: Bool?
    public var varianceType: DDPMVarianceType?
    public var finalSigmasType: FinalSigmaType?
    public var lowerOrderFinal: Bool?
    public var rescaleBetasZeroSnr: Bool?
    /// LCM: steps of the distillation schedule the inference timesteps are picked from (diffusers default 50).
    public var originalInferenceSteps: Int?
    /// LCM: factor on t in the boundary conditions c_skip, c_out (diffusers default 10).
    public var timestepScaling: Double?

    enum CodingKeys: String, CodingKey {
        case className = "_class_name"
        case numTrainTimesteps = "num_train_timesteps"
        case betaStart = "beta_start"
        case betaEnd = "beta_end"
        case betaSchedule = "beta_schedule"
        case trainedBetas = "trained_betas"
        case predictionType = "prediction_type"
        case timestepSpacing = "timestep_spacing"
        case stepsOffset = "steps_offset"
        case setAlphaToOne = "set_alpha_to_one"
        case clipSample = "clip_sample"
        case clipSampleRange = "clip_sample_range"
        case skipPrkSteps = "skip_prk_steps"
        case useKarrasSigmas = "use_karras_sigmas"
        case varianceType = "variance_type"
        case finalSigmasType = "final_sigmas_type"
        case lowerOrderFinal = "lower_order_final"
        case rescaleBetasZeroSnr = "rescale_betas_zero_snr"
        case originalInferenceSteps = "original_inference_steps"
        case timestepScaling = "timestep_scaling"
    }

    public init(className: String? = nil, numTrainTimesteps: Int? = nil, betaStart: Double? = nil,
                betaEnd: Double? = nil, betaSchedule: BetaSchedule? = nil, trainedBetas: [Double]? = nil,
                predictionType: PredictionType? = nil, timestepSpacing: TimestepSpacing? = nil,
                stepsOffset: Int? = nil, setAlphaToOne: Bool? = nil, clipSample: Bool? = nil,
                clipSampleRange: Double? = nil, skipPrkSteps: Bool? = nil, useKarrasSigmas: Bool? = nil,
                varianceType: DDPMVarianceType? = nil, finalSigmasType: FinalSigmaType? = nil,
                lowerOrderFinal: Bool? = nil, rescaleBetasZeroSnr: Bool? = nil, originalInferenceSteps: Int? = nil,
                timestepScaling: Double? = nil) {
        self.className = className
        self.numTrainTimesteps = numTrainTimesteps
        self.betaStart = betaStart
        self.betaEnd = betaEnd
        self.betaSchedule = betaSchedule
        self.trainedBetas = trainedBetas
        self.predictionType = predictionType
        self.timestepSpacing = timestepSpacing
        self.stepsOffset = stepsOffset
        self.setAlphaToOne = setAlphaToOne
        self.clipSample = clipSample
        self.clipSampleRange = clipSampleRange
        self.skipPrkSteps = skipPrkSteps
        self.useKarrasSigmas = useKarrasSigmas
        self.varianceType = varianceType
        self.finalSigmasType = finalSigmasType
        self.lowerOrderFinal = lowerOrderFinal
        self.rescaleBetasZeroSnr = rescaleBetasZeroSnr
        self.originalInferenceSteps = originalInferenceSteps
        self.timestepScaling = timestepScaling
    }

    /// Stable Diffusion 1.x's `scheduler_config.json` (1000 steps, scaled_linear 0.00085→0.012, epsilon,
    /// leading spacing with steps_offset 1, PLMS without PRK, no clipping).
    public static let stableDiffusion1 = SchedulerConfig(
        className: "PNDMScheduler", numTrainTimesteps: 1000, betaStart: 0.00085, betaEnd: 0.012,
        betaSchedule: .scaledLinear, setAlphaToOne: false, clipSample: false, skipPrkSteps: true)

    /// Decodes a `scheduler_config.json`; unknown keys are ignored, unknown enum values are errors.
    public static func decode(_ data: Data, path: String = "scheduler_config.json") throws -> SchedulerConfig {
        let config: SchedulerConfig
        do {
            config = try JSONDecoder().decode(SchedulerConfig.self, from: data)
        } catch let DecodingError.dataCorrupted(ctx) {
            throw SchedulerError.unreadable(path: path, reason: Self.describe(ctx))
        } catch let DecodingError.typeMismatch(_, ctx) {
            throw SchedulerError.unreadable(path: path, reason: Self.describe(ctx))
        } catch let DecodingError.valueNotFound(_, ctx) {
            throw SchedulerError.unreadable(path: path, reason: Self.describe(ctx))
        } catch {
            throw SchedulerError.unreadable(path: path, reason: "\(error)")
        }
        if config.rescaleBetasZeroSnr == true {
            throw SchedulerError.invalidConfig("rescale_betas_zero_snr = true is not supported (\(path))")
        }
        return config
    }

    /// Reads `scheduler_config.json`; a missing file gives `stableDiffusion1`.
    public static func load(contentsOf url: URL) throws -> SchedulerConfig {
        guard FileManager.default.fileExists(atPath: url.path) else { return .stableDiffusion1 }
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw SchedulerError.unreadable(path: url.path, reason: fileErrorCause(error))
        }
        return try decode(data, path: url.path)
    }

    private static func describe(_ ctx: DecodingError.Context) -> String {
        let key = ctx.codingPath.map(\.stringValue).joined(separator: ".")
        return key.isEmpty ? ctx.debugDescription : "key \(key): \(ctx.debugDescription)"
    }
}
