// LDMYAML: the few settings this loader reads from an original inference config (`v2-inference-v.yaml`,
// `v1-inference.yaml`) that a user keeps beside a single-file checkpoint as `<name>.yaml`, as AUTOMATIC1111
// does: `parameterization` ("v" or "eps"), and the UNet's `num_heads` / `num_head_channels`.
//
// Not a YAML parser: each line is read as `key: value` (a trailing `# comment` and quotes dropped); the keys
// read here occur once in those files.

import Foundation
import TensorCore
import Schedulers

public struct LDMYAML: Sendable {
    public let url: URL
    /// `parameterization`: "v" → v-prediction, "eps" → ε; nil when absent.
    public let predictionType: PredictionType?
    /// `num_heads` (−1 or absent: not set).
    public let numHeads: Int?
    /// `num_head_channels` (−1 or absent: not set).
    public let numHeadChannels: Int?

    public init(contentsOf url: URL) throws {
        self.url = url
        let text: String
        do {
            text = try String(contentsOf: url, encoding: .utf8)
        } catch {
            throw PipelineError.invalidFile(path: url.path, reason: "cannot read (\(fileErrorCause(error)))")
        }
        var values: [String: String] = [:]
        for line in text.split(whereSeparator: \.isNewline) {
            let content = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)[0]
            let pair = content.split(separator: ":", maxSplits: 1)
            guard pair.count == 2 else { continue }
            let key = pair[0].trimmingCharacters(in: .whitespaces)
            let value = pair[1].trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: "\"'"))
            if values[key] == nil, !value.isEmpty { values[key] = value }
        }
        switch values["parameterization"] {
        case nil: predictionType = nil
        case "v": predictionType = .vPrediction
        case "eps": predictionType = .epsilon
        case let other?:
            throw PipelineError.invalidFile(path: url.path, reason: "parameterization \"\(other)\" (expected \"v\" or \"eps\")")
        }
        numHeads = values["num_heads"].flatMap(Int.init)
        numHeadChannels = values["num_head_channels"].flatMap(Int.init)
    }
}
