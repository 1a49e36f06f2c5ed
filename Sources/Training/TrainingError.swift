// Errors of the training library; the executables print them as one line.
import Foundation

public enum TrainingError: Error, CustomStringConvertible, Equatable {
    /// An instance image folder or file that cannot be used.
    case invalidData(String)
    /// A setting that cannot be carried out.
    case invalidSettings(String)
    /// A checkpoint that is missing, damaged or from another run.
    case invalidCheckpoint(String)
    /// The loss became NaN or infinite; the last good checkpoint is kept.
    case nonFiniteLoss(step: Int, checkpoint: String?)

    public var description: String {
        switch self {
        case .invalidData(let m), .invalidSettings(let m), .invalidCheckpoint(let m): return m
        case .nonFiniteLoss(let step, let checkpoint):
            return "the loss became NaN/Inf at step \(step); stopped"
                + (checkpoint.map { ". The last good checkpoint is \($0) (resume with a lower --lr)" } ?? " before any checkpoint was written")
        }
    }
}

/// JSON with sorted keys: the same value always gives the same text (checkpoints compare configurations
/// as text).
public func canonicalJSON<T: Encodable>(_ value: T) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}
