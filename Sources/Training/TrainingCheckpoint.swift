// Training checkpoints: one safetensors file holding the trained parameters (`param.<key>`), the optimiser's
// tensors (AdamW's moments `adamw.m.<key>`, `adamw.v.<key>`; Prodigy's `prodigy.*`, Adafactor's `adafactor.*`),
// and in its metadata the loop state (step, RNG state, loss history), the optimiser's scalars (Prodigy's d…, as
// exact Float64 bit patterns), the run's configuration (JSON) and a checksum over all of it. The file is written to a
// temporary name and renamed, so a crash leaves either the previous checkpoint or the new one; a file
// that was damaged afterwards fails its checksum and is refused.
import Foundation
import NN
import SafeTensors
import TensorCore

/// The loss on the held-out validation images at fixed noise and timesteps, after `step` updates.
public struct ValidationLoss: Codable, Equatable, Sendable {
    public var step: Int
    public var loss: Float

    public init(step: Int, loss: Float) {
        self.step = step
        self.loss = loss
    }
}

/// Where the loop stands: everything besides tensors that a resumed run needs to continue bit for bit.
public struct LoopState: Codable, Equatable, Sendable {
    /// Optimiser updates done.
    public var step: Int
    /// The run's random stream (timesteps, noise, data order, crops) at that point.
    public var random: PhiloxRandom
    /// Loss of every update so far (mean over the accumulated micro-batches).
    public var lossHistory: [Float]
    /// Seconds spent training before this point (over all sessions).
    public var elapsed: Double
    /// Validation losses so far (nil: the run has no validation set).
    public var validationLosses: [ValidationLoss]?

    public init(step: Int, random: PhiloxRandom, lossHistory: [Float] = [], elapsed: Double = 0) {
        self.step = step
        self.random = random
        self.lossHistory = lossHistory
        self.elapsed = elapsed
    }
}

public struct TrainingCheckpoint {
    public var state: LoopState
    /// The run configuration as the caller encoded it (JSON).
    public var configuration: String
    /// `param.<key>` and the optimiser's tensors.
    public var tensors: [String: Tensor]
    /// The optimiser's update count.
    public var optimizerStep: Int
    /// The optimiser's scalar state (none for AdamW).
    public var optimizerScalars: [String: Double]
    /// Further metadata the caller keeps with the checkpoint (e.g. train-base's timing), covered by the checksum.
    public var extra: [String: String]

    public init(state: LoopState, configuration: String, tensors: [String: Tensor], optimizerStep: Int,
                optimizerScalars: [String: Double] = [:], extra: [String: String] = [:]) {
        self.state = state
        self.configuration = configuration
        self.tensors = tensors
        self.optimizerStep = optimizerStep
        self.optimizerScalars = optimizerScalars
        self.extra = extra
    }

    /// The file name inside a run folder.
    public static let fileName = "checkpoint.safetensors"
    /// Names of the AdamW moments among the tensors.
    public static let momentKeys = AdamW.checkpointKeys

    /// Writes the checkpoint atomically to `path` (temporary file + rename).
    public func write(to path: String) throws {
        let stateJSON = try canonicalJSON(state)
        var writer = SafeTensorsWriter()
        for name in tensors.keys.sorted() { try writer.add(name, tensors[name]!) }
        let scalarsJSON = optimizerScalars.isEmpty ? nil : try Self.encodeScalars(optimizerScalars)
        let sum = Self.checksum(tensors: tensors, state: stateJSON, configuration: configuration,
                                optimizerStep: optimizerStep, scalars: scalarsJSON, extra: extra)
        writer.metadata = extra.merging(["format": "pt", "training.state": stateJSON, "training.config": configuration,
                                         "training.optimizer_step": String(optimizerStep), "training.checksum": sum]) { $1 }
        if let scalarsJSON { writer.metadata["training.optimizer_scalars"] = scalarsJSON }
        try writer.write(to: path)
    }

    /// Reads and verifies the checkpoint at `path`: a damaged or foreign file is refused with a message.
    public static func read(path: String) throws -> TrainingCheckpoint {
        guard FileManager.default.fileExists(atPath: path) else {
            throw TrainingError.invalidCheckpoint("no checkpoint at \(path)")
        }
        let file: SafeTensorsFile
        let tensors: [String: Tensor]
        do {
            file = try SafeTensorsFile(path: path)
            tensors = try file.loadAll()
        } catch {
            throw TrainingError.invalidCheckpoint("checkpoint \(path) is damaged and was refused (\(error))")
        }
        let meta = file.metadata
        guard let stateJSON = meta["training.state"], let configuration = meta["training.config"],
              let stored = meta["training.checksum"], let optimizerStep = meta["training.optimizer_step"].flatMap(Int.init)
        else {
            throw TrainingError.invalidCheckpoint("\(path) is not a training checkpoint (its metadata has no training state)")
        }
        let extra = meta.filter { $0.key != "format" && !$0.key.hasPrefix("training.") }
        let scalarsJSON = meta["training.optimizer_scalars"]
        guard checksum(tensors: tensors, state: stateJSON, configuration: configuration, optimizerStep: optimizerStep,
                       scalars: scalarsJSON, extra: extra) == stored else {
            throw TrainingError.invalidCheckpoint("checkpoint \(path) is corrupted (checksum mismatch) and was refused; "
                + "delete it to start over")
        }
        let state: LoopState
        do {
            state = try JSONDecoder().decode(LoopState.self, from: Data(stateJSON.utf8))
        } catch {
            throw TrainingError.invalidCheckpoint("checkpoint \(path) has an unreadable state (\(error))")
        }
        var scalars: [String: Double] = [:]
        if let scalarsJSON {
            guard let decoded = decodeScalars(scalarsJSON) else {
                throw TrainingError.invalidCheckpoint("checkpoint \(path) has unreadable optimiser scalars")
            }
            scalars = decoded
        }
        return TrainingCheckpoint(state: state, configuration: configuration, tensors: tensors, optimizerStep: optimizerStep,
                                  optimizerScalars: scalars, extra: extra)
    }

    /// Scalars as JSON `{"name": "<Float64 bit pattern in hex>"}` (exact, unlike decimal text).
    static func encodeScalars(_ scalars: [String: Double]) throws -> String {
        try canonicalJSON(scalars.mapValues { String($0.bitPattern, radix: 16) })
    }

    static func decodeScalars(_ json: String) -> [String: Double]? {
        guard let strings = try? JSONDecoder().decode([String: String].self, from: Data(json.utf8)) else { return nil }
        var out: [String: Double] = [:]
        for (key, hex) in strings {
            guard let bits = UInt64(hex, radix: 16) else { return nil }
            out[key] = Double(bitPattern: bits)
        }
        return out
    }

    /// FNV-1a (64-bit) over the tensors (sorted by name: name, shape, float bits), the strings and the extra
    /// metadata (sorted by key; none for LoRA runs).
    static func checksum(tensors: [String: Tensor], state: String, configuration: String, optimizerStep: Int,
                         scalars: String? = nil, extra: [String: String] = [:]) -> String {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        func mix<S: Sequence>(_ bytes: S) where S.Element == UInt8 {
            for b in bytes { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        }
        for name in tensors.keys.sorted() {
            let t = tensors[name]!
            mix(name.utf8)
            mix(t.shape.map(String.init).joined(separator: ",").utf8)
            t.withUnsafeBufferPointer { b in
                for x in b {
                    var bits = x.bitPattern
                    for _ in 0..<4 { h = (h ^ UInt64(bits & 0xFF)) &* 0x0000_0100_0000_01B3; bits >>= 8 }
                }
            }
        }
        mix(state.utf8)
        mix(configuration.utf8)
        mix(String(optimizerStep).utf8)
        if let scalars { mix(scalars.utf8) }       // absent for AdamW, so older checkpoints keep their checksum
        for key in extra.keys.sorted() {
            mix(key.utf8)
            mix(extra[key]!.utf8)
        }
        return String(h, radix: 16)
    }
}
