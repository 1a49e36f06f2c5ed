// What a training command shows and how it stops: progress lines (step, loss EMA, lr, s/step, ETA; a
// live line on a terminal, plain lines otherwise) and a SIGINT/SIGTERM handler: the first signal raises a
// flag, which the loop checks between steps (it then writes a checkpoint and the command exits 130), and says
// so at once; a second one exits at once (checkpoints are written atomically, so the last one stays).
import Foundation
import Training

/// Set by the signal handler; read between training steps. A C signal handler cannot capture context,
/// so this one flag is process-global by necessity.
nonisolated(unsafe) private var stopSignal: sig_atomic_t = 0

public enum StopRequest {
    /// Routes SIGINT and SIGTERM to the stop flag.
    public static func install() {
        signal(SIGINT, handle)
        signal(SIGTERM, handle)
    }

    /// The handler: only async-signal-safe calls (write, _exit) and the flag.
    private static let handle: @convention(c) (Int32) -> Void = { _ in
        if stopSignal == 0 {
            stopSignal = 1
            let text: StaticString = "\nstopping after this step (a checkpoint is written); press Ctrl-C again to stop now\n"
            _ = write(STDERR_FILENO, text.utf8Start, text.utf8CodeUnitCount)
        } else {
            let text: StaticString = "\nstopped now; checkpoints written so far stay\n"
            _ = write(STDERR_FILENO, text.utf8Start, text.utf8CodeUnitCount)
            _exit(130)
        }
    }

    public static var isRequested: Bool { stopSignal != 0 }

    /// Clears a request (tests, and a command that handled one and goes on).
    public static func reset() { stopSignal = 0 }
}

/// Prints training events on stderr.
public final class TrainingConsole {
    private let live: Bool
    private var lastLength = 0
    private var lastPrinted = Date.distantPast

    public init(live: Bool = isatty(STDERR_FILENO) != 0) { self.live = live }

    public func handle(_ event: TrainingEvent) {
        switch event {
        case .step(let r):
            let line = String(format: "step %d/%d  loss %.4f (ema %.4f)  lr %.2e  %.2f s/step  ETA %@",
                              r.step, r.total, r.loss, r.lossEMA, r.learningRate, r.secondsPerStep,
                              ProgressReporter.duration(r.eta))
            if live {
                let width = 20, filled = r.total > 0 ? width * r.step / r.total : width
                let bar = "[" + String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled) + "] "
                let text = bar + line
                let pad = String(repeating: " ", count: max(0, lastLength - text.count))
                lastLength = text.count
                FileHandle.standardError.write(Data(("\r" + text + pad).utf8))
            } else if r.step == r.total || r.step == 1 || Date().timeIntervalSince(lastPrinted) >= 10 {
                lastPrinted = Date()
                printError(line)
            }
        case .checkpoint(let path, let step):
            note("checkpoint step \(step) → \(path)")
        case .preview(let step):
            note("samples for step \(step) written")
        case .validation(let v):
            note(String(format: "validation loss %.4f at step %d", v.loss, v.step))
        }
    }

    /// A line that does not disturb the live progress line.
    public func note(_ text: String) {
        if live && lastLength > 0 {
            FileHandle.standardError.write(Data(("\r" + String(repeating: " ", count: lastLength) + "\r").utf8))
            lastLength = 0
        }
        printError(text)
    }
}
