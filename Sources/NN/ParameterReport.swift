// The trainable-parameter summary, in PEFT's exact format:
// `trainable params: 797,184 || all params: 859,520,964 || trainable%: 0.0927`
import Autograd
import Foundation

/// Parameter counts of a module tree, adapters included; each shared variable counts once.
public struct ParameterCounts: Equatable, Sendable {
    public var trainable: Int
    public var all: Int

    public init(trainable: Int, all: Int) {
        self.trainable = trainable
        self.all = all
    }

    /// PEFT's `print_trainable_parameters` line.
    public var report: String {
        let percent = all == 0 ? 0 : 100 * Double(trainable) / Double(all)
        return "trainable params: \(grouped(trainable)) || all params: \(grouped(all)) || trainable%: "
            + String(format: "%.4f", percent)
    }
}

extension Module {
    /// Trainable and total scalar counts over checkpoint and adapter parameters; 4-bit weights count with
    /// their element count, as PEFT counts bitsandbytes' Params4bit.
    public func parameterCounts() -> ParameterCounts {
        var counts = ParameterCounts(trainable: 0, all: quantizedSummary().weights)
        for (_, p) in allParameters() {
            counts.all += p.value.count
            if p.requiresGrad { counts.trainable += p.value.count }
        }
        return counts
    }

    /// `trainable params: 797,184 || all params: 859,520,964 || trainable%: 0.0927`
    public func parameterReport() -> String { parameterCounts().report }
}

/// `859520964` → `859,520,964`.
func grouped(_ n: Int) -> String {
    let digits = String(n.magnitude)
    var out = ""
    for (i, ch) in digits.enumerated() {
        if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
        out.append(ch)
    }
    return (n < 0 ? "-" : "") + out
}
