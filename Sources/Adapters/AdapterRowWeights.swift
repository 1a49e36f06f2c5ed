// Per-image adapter weights passed with a model call instead of set on the model: for the calls made inside
// `apply`, every LoRA branch reads its adapter's per-row weights from this value (a task-local binding).
// Nothing in the layers changes, so two callers with different per-image weights can share one model, each
// on its own thread or task, and an error cannot leave weights behind.
import NN

/// Adapter name → one weight per batch row (w of w·α/r; a row at 0 skips the adapter). Adapters the value
/// does not name keep their own weight (`AdapterStack.setWeight`).
public struct AdapterRowWeights: Equatable, Sendable {
    public var rows: [String: [Float]]

    public init(rows: [String: [Float]]) { self.rows = rows }

    /// `perImage[i]` maps adapter names to image i's weights (an adapter absent from an image is 0 for it).
    /// The batch holds `copies` consecutive groups of the images (2 under classifier-free guidance:
    /// unconditional rows, then conditional rows). `names` are the adapters the value governs; one absent
    /// from every image is off for the whole batch.
    public init(perImage: [[String: Float]], copies: Int = 1, names: [String]) {
        var rows: [String: [Float]] = [:]
        for name in names {
            rows[name] = Array(repeating: perImage.map { $0[name] ?? 0 }, count: max(copies, 1)).flatMap { $0 }
        }
        self.rows = rows
    }

    /// The weights the model calls of the current task see (nil: every adapter at its own weight).
    @TaskLocal public static var current: AdapterRowWeights?

    /// Runs `body` (model calls) with these per-row weights.
    public func apply<T>(_ body: () throws -> T) rethrows -> T {
        try Self.$current.withValue(self, operation: body)
    }
}
