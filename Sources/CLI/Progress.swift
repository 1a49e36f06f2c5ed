// Step progress on stderr: a live bar redrawn in place when stderr is a terminal, plain lines otherwise.

import Foundation

public final class ProgressReporter {
    private let label: String
    private let live: Bool
    private var lastLine = 0

    /// - Parameters:
    ///   - label: text before the counts (e.g. "image 1/2").
    ///   - live: redraw one line with `\r`; default: whether stderr is a terminal.
    public init(label: String, live: Bool = isatty(STDERR_FILENO) != 0) {
        self.label = label
        self.live = live
    }

    /// Reports `step` of `total` after `elapsed` seconds: step, it/s and ETA.
    public func update(step: Int, total: Int, elapsed: Double) {
        let rate = elapsed > 0 ? Double(step) / elapsed : 0
        let eta = rate > 0 ? Double(total - step) / rate : 0
        let counts = "\(step)/\(total)  " + Self.rate(rate) + "  ETA " + Self.duration(eta)
        if live {
            let width = 24
            let filled = total > 0 ? width * step / total : width
            let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
            let line = "\(label) [\(bar)] \(counts)"
            let padding = String(repeating: " ", count: max(0, lastLine - line.count))
            lastLine = line.count
            FileHandle.standardError.write(Data(("\r" + line + padding + (step == total ? "\n" : "")).utf8))
        } else {
            printError("\(label) step \(counts)")
        }
    }

    /// "1.25 it/s", or "4.0 s/it" when slower than one step per second.
    static func rate(_ r: Double) -> String {
        guard r > 0 else { return "– it/s" }
        return r >= 1 ? String(format: "%.2f it/s", r) : String(format: "%.1f s/it", 1 / r)
    }

    /// "42s", "3m05s", "1h02m".
    public static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        if s < 60 { return "\(s)s" }
        if s < 3600 { return String(format: "%dm%02ds", s / 60, s % 60) }
        return String(format: "%dh%02dm", s / 3600, (s % 3600) / 60)
    }
}
