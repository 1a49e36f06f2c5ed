// GradMode: whether operations record themselves for differentiation, as a scoped (task-local) value.
//
//     let y = try withNoGrad { try model(x) }   // nothing inside records; inference pays nothing
import Foundation
import TensorCore

public enum GradMode {
    /// Whether operations in the current scope record a graph. On by default.
    @TaskLocal public static var isEnabled: Bool = true

    /// Set while a checkpointed block runs its forward pass: notes whether any op saw an input that
    /// requires a gradient, so the checkpoint knows whether it must record itself.
    @TaskLocal static var probe: Probe?

    /// Records when an op sees an input requiring a gradient while recording is off.
    final class Probe { var sawGradient = false }

    /// True when an operation on `inputs` must record itself.
    public static func shouldRecord(_ inputs: [Variable]) -> Bool {
        var any = false
        for v in inputs where v.requiresGrad { any = true; break }
        guard any else { return false }
        if isEnabled { return true }
        if let probe { probe.sawGradient = true }
        return false
    }
}

/// Runs `body` with recording switched off: every result is a leaf, no graph is kept.
public func withNoGrad<R>(_ body: () throws -> R) rethrows -> R {
    try GradMode.$isEnabled.withValue(false, operation: body)
}

/// Runs `body` with recording switched on (for example, inside a `withNoGrad` scope).
public func withGrad<R>(_ body: () throws -> R) rethrows -> R {
    try GradMode.$isEnabled.withValue(true, operation: body)
}

/// A record of which gradient computations ran, for tests and profiling.
///
///     let trace = BackwardTrace()
///     try GradMode.$trace.withValue(trace) { try loss.backward() }
///     trace.events   // ["linear.dInput", "linear.dWeight", …]
public final class BackwardTrace: @unchecked Sendable {
    private let lock = NSLock()
    private var recorded: [String] = []

    public init() {}

    /// The events noted so far, in order.
    public var events: [String] { lock.withLock { recorded } }

    func note(_ event: String) { lock.withLock { recorded.append(event) } }
}

extension GradMode {
    /// The trace that VJPs in the current scope report to; nil (no cost) by default.
    @TaskLocal public static var trace: BackwardTrace?

    /// Reports one gradient computation (`"<op>.<part>"`, e.g. `"linear.dWeight"`) to the current trace.
    public static func note(_ event: @autoclosure () -> String) {
        if let trace { trace.note(event()) }
    }
}
