// The training options kohya's sd-scripts users carry over, in their spellings:
//   --optimizer_args KEY=VALUE …   the optimiser's keyword arguments (Python literals: 0.01, True, 0.9,0.999)
//   --save_precision fp16|bf16|fp32
//   --sample_prompts FILE          one prompt a line with `--n negative --w W --h H --d seed --s steps --l cfg`
import Foundation
import NN
import SafeTensors

/// The optimiser of a run, named as `--optimizer` takes it.
public enum OptimizerKind: String, CaseIterable, Sendable {
    case adamw, prodigy, adafactor
}

extension LoopSettings {
    /// The optimiser's name.
    public var optimizerKind: OptimizerKind {
        switch optimizer {
        case nil: return .adamw
        case .prodigy: return .prodigy
        case .adafactor: return .adafactor
        }
    }

    /// kohya's `ss_optimizer` text: the class and its non-default arguments.
    public var optimizerDescription: String {
        switch optimizer {
        case nil:
            return "torch.optim.adamw.AdamW(weight_decay=\(adamW.weightDecay),betas=(\(adamW.beta1), \(adamW.beta2)),eps=\(adamW.eps))"
        case .prodigy(let p):
            return "prodigyopt.prodigy.Prodigy(weight_decay=\(p.weightDecay),decouple=\(py(p.decouple)),"
                + "use_bias_correction=\(py(p.useBiasCorrection)),safeguard_warmup=\(py(p.safeguardWarmup)),d_coef=\(p.dCoef),d0=\(p.d0))"
        case .adafactor(let a):
            return "transformers.optimization.Adafactor(relative_step=\(py(a.relativeStep)),scale_parameter=\(py(a.scaleParameter)),"
                + "warmup_init=\(py(a.warmupInit))" + (a.beta1.map { ",beta1=\($0)" } ?? "") + ")"
        }
    }

    private func py(_ b: Bool) -> String { b ? "True" : "False" }

    /// Sets the optimiser from `--optimizer` and kohya's `--optimizer_args` (`KEY=VALUE` words; unknown keys and
    /// bad values are refused, naming the key). Adafactor's relative_step is on unless set (kohya's default).
    public mutating func setOptimizer(_ kind: OptimizerKind, arguments: [String]) throws {
        var pairs: [(key: String, value: String)] = []
        for word in arguments.flatMap({ $0.split(whereSeparator: \.isWhitespace) }) {
            let parts = word.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty else {
                throw TrainingError.invalidSettings("--optimizer-args takes KEY=VALUE words (e.g. weight_decay=0.01), got \"\(word)\"")
            }
            pairs.append((parts[0].lowercased(), parts[1]))
        }
        func number(_ key: String, _ text: String) throws -> Double {
            guard let x = Double(text), x.isFinite else {
                throw TrainingError.invalidSettings("--optimizer-args \(key)=\(text): a number expected")
            }
            return x
        }
        func flag(_ key: String, _ text: String) throws -> Bool {
            switch text.lowercased() {
            case "true", "1": return true
            case "false", "0": return false
            default: throw TrainingError.invalidSettings("--optimizer-args \(key)=\(text): True or False expected")
            }
        }
        func numbers(_ key: String, _ text: String, count: Int) throws -> [Double] {
            let items = text.trimmingCharacters(in: CharacterSet(charactersIn: "()[] ")).split(separator: ",")
            guard items.count == count else {
                throw TrainingError.invalidSettings("--optimizer-args \(key)=\(text): \(count) comma-separated numbers expected")
            }
            return try items.map { try number(key, String($0).trimmingCharacters(in: .whitespaces)) }
        }
        func unknown(_ key: String, _ known: [String]) -> TrainingError {
            TrainingError.invalidSettings("--optimizer-args: \(kind.rawValue) has no option \(key) (known: \(known.joined(separator: ", ")))")
        }
        switch kind {
        case .adamw:
            var s = adamW
            for (key, value) in pairs {
                switch key {
                case "weight_decay": s.weightDecay = Float(try number(key, value))
                case "eps": s.eps = Float(try number(key, value))
                case "betas":
                    let b = try numbers(key, value, count: 2)
                    (s.beta1, s.beta2) = (Float(b[0]), Float(b[1]))
                default: throw unknown(key, ["betas", "eps", "weight_decay"])
                }
            }
            adamW = s
            optimizer = nil
        case .prodigy:
            var s = ProdigySettings()
            for (key, value) in pairs {
                switch key {
                case "d0": s.d0 = try number(key, value)
                case "d_coef": s.dCoef = try number(key, value)
                case "betas":
                    let b = try numbers(key, value, count: 2)
                    (s.beta1, s.beta2) = (b[0], b[1])
                case "beta3": s.beta3 = value.lowercased() == "none" ? nil : try number(key, value)
                case "eps": s.eps = try number(key, value)
                case "weight_decay": s.weightDecay = try number(key, value)
                case "decouple": s.decouple = try flag(key, value)
                case "use_bias_correction": s.useBiasCorrection = try flag(key, value)
                case "safeguard_warmup": s.safeguardWarmup = try flag(key, value)
                case "growth_rate": s.growthRate = value.lowercased() == "inf" ? nil : try number(key, value)
                default:
                    throw unknown(key, ["betas", "beta3", "d0", "d_coef", "decouple", "eps", "growth_rate", "safeguard_warmup",
                                        "use_bias_correction", "weight_decay"])
                }
            }
            do { try s.validate() } catch { throw TrainingError.invalidSettings("\(error)") }
            optimizer = .prodigy(s)
        case .adafactor:
            var s = AdafactorSettings()
            for (key, value) in pairs {
                switch key {
                case "relative_step": s.relativeStep = try flag(key, value)
                case "scale_parameter": s.scaleParameter = try flag(key, value)
                case "warmup_init": s.warmupInit = try flag(key, value)
                case "beta1": s.beta1 = value.lowercased() == "none" ? nil : try number(key, value)
                case "weight_decay": s.weightDecay = try number(key, value)
                case "clip_threshold": s.clipThreshold = try number(key, value)
                case "decay_rate": s.decayRate = try number(key, value)
                case "eps":
                    let e = try numbers(key, value, count: 2)
                    (s.eps1, s.eps2) = (e[0], e[1])
                default:
                    throw unknown(key, ["beta1", "clip_threshold", "decay_rate", "eps", "relative_step", "scale_parameter",
                                        "warmup_init", "weight_decay"])
                }
            }
            // kohya: warmup_init needs the relative step, which it then switches on.
            if s.warmupInit { s.relativeStep = true }
            do { try s.validate() } catch { throw TrainingError.invalidSettings("\(error)") }
            optimizer = .adafactor(s)
        }
    }
}

/// How the adapter file stores its tensors (kohya's --save_precision).
public enum SavePrecision: String, Codable, CaseIterable, Sendable {
    case fp16, bf16, fp32

    public var dtype: DType {
        switch self {
        case .fp16: return .f16
        case .bf16: return .bf16
        case .fp32: return .f32
        }
    }
}

/// One line of a kohya sample-prompts file: `a photo of sks dog --n blurry --w 512 --h 768 --d 7 --s 28 --l 7.5`.
public struct SamplePrompt: Codable, Equatable, Sendable {
    public var prompt: String
    public var negativePrompt: String = ""
    public var width: Int?
    public var height: Int?
    public var seed: UInt64?
    public var steps: Int?
    public var guidanceScale: Double?

    public init(prompt: String) { self.prompt = prompt }

    /// Parses a file: blank lines and `#` comments are skipped; an unknown or malformed option is refused with
    /// the file and line. Options as kohya's `line_to_prompt_dict` reads them (`--n`, `--w`, `--h`, `--d`, `--s`,
    /// `--l`); kohya's sampler options (`--ss`) are not taken.
    public static func parse(file path: String) throws -> [SamplePrompt] {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw TrainingError.invalidData("cannot read the sample prompts file \(path)")
        }
        var out: [SamplePrompt] = []
        for (number, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !line.isEmpty, !line.hasPrefix("#") else { continue }
            func fail(_ why: String) -> TrainingError { .invalidData("\(path):\(number + 1): \(why)") }
            let parts = (" " + line).components(separatedBy: " --")
            var p = SamplePrompt(prompt: parts[0].trimmingCharacters(in: .whitespaces))
            guard !p.prompt.isEmpty else { throw fail("the line has options but no prompt") }
            for part in parts.dropFirst() {
                let words = part.split(separator: " ", maxSplits: 1).map(String.init)
                let option = words.first ?? "", value = words.count > 1 ? words[1].trimmingCharacters(in: .whitespaces) : ""
                func int(_ range: ClosedRange<Int>) throws -> Int {
                    guard let x = Int(value), range.contains(x) else { throw fail("--\(option) \(value): a whole number in \(range) expected") }
                    return x
                }
                switch option {
                case "n": p.negativePrompt = value
                case "w": p.width = try int(8...4096)
                case "h": p.height = try int(8...4096)
                case "d":
                    guard let s = UInt64(value) else { throw fail("--d \(value): a seed (whole number ≥ 0) expected") }
                    p.seed = s
                case "s": p.steps = try int(1...1000)
                case "l":
                    guard let x = Double(value), x.isFinite, x >= 0 else { throw fail("--l \(value): a guidance scale ≥ 0 expected") }
                    p.guidanceScale = x
                default:
                    throw fail("unknown option --\(option) (sample prompts take --n, --w, --h, --d, --s, --l)")
                }
            }
            out.append(p)
        }
        guard !out.isEmpty else { throw TrainingError.invalidData("the sample prompts file \(path) has no prompts") }
        return out
    }
}
