// GradientCheck: compares an operation's VJP with central finite differences.
//
// The function under test maps input tensors to an output y; the check projects y on a fixed random
// direction r, L(x) = Σ r·y(x), accumulated in Double, and compares ∂L/∂x from `backward(r)` with
// (L(x + h·e_i) − L(x − h·e_i)) / (x_i⁺ − x_i⁻) for every input element i, where x_i± are the perturbed
// Float32 values actually used (so the step's rounding does not count as an error).
import TensorCore

public enum GradientCheck {
    /// The outcome of one check; `description` lists the worst mismatches.
    public struct Report: CustomStringConvertible {
        /// Largest |analytic − numeric| over all checked elements.
        public var maxAbsoluteError: Double = 0
        /// Number of elements compared.
        public var checked = 0
        /// "input i[flat j]: analytic a, numeric n" for elements outside the tolerance.
        public var mismatches: [String] = []

        public var passed: Bool { mismatches.isEmpty && checked > 0 }

        public var description: String {
            let head = "checked \(checked) elements, max |error| \(maxAbsoluteError)"
            guard !mismatches.isEmpty else { return head }
            return head + ", \(mismatches.count) mismatches:\n  " + mismatches.prefix(8).joined(separator: "\n  ")
        }
    }

    /// Checks the gradient of `f` with respect to every input listed in `wrt` (all when nil).
    /// An element passes when |analytic − numeric| ≤ absoluteTolerance + relativeTolerance·|numeric|.
    public static func check(_ inputs: [Tensor], wrt: Set<Int>? = nil, step: Double = 1e-2,
                             absoluteTolerance: Double = 1e-3, relativeTolerance: Double = 1e-2,
                             seed: UInt64 = 1, _ f: ([Variable]) throws -> Variable) throws -> Report {
        let checkedInputs = wrt ?? Set(inputs.indices)
        let variables = inputs.enumerated().map { Variable($0.element, requiresGrad: checkedInputs.contains($0.offset)) }
        let output = try f(variables)
        let direction = projection(shape: output.shape, seed: seed)
        try output.backward(direction)

        func loss(_ xs: [Tensor]) throws -> Double {
            let y = try withNoGrad { try f(xs.map { Variable($0) }) }
            var sum = 0.0
            for i in 0..<y.value.count { sum += Double(y.value[flat: i]) * Double(direction[flat: i]) }
            return sum
        }

        var report = Report()
        for index in checkedInputs.sorted() {
            let analytic = variables[index].grad
            var xs = inputs
            for j in 0..<inputs[index].count {
                let x = inputs[index][flat: j]
                let plus = Float(Double(x) + step), minus = Float(Double(x) - step)
                xs[index].set(flat: j, plus)
                let lp = try loss(xs)
                xs[index].set(flat: j, minus)
                let lm = try loss(xs)
                xs[index].set(flat: j, x)
                let numeric = (lp - lm) / (Double(plus) - Double(minus))
                let a = analytic.map { Double($0[flat: j]) } ?? 0
                let error = abs(a - numeric)
                report.checked += 1
                report.maxAbsoluteError = max(report.maxAbsoluteError, error)
                if !(error <= absoluteTolerance + relativeTolerance * abs(numeric)) {
                    report.mismatches.append("input \(index)[flat \(j)]: analytic \(a), numeric \(numeric)")
                }
            }
        }
        return report
    }

    /// A reproducible direction with entries in [-1, 1) (SplitMix64).
    static func projection(shape: [Int], seed: UInt64) -> Tensor {
        var state = seed
        return Tensor(shape: shape) { buffer in
            for i in buffer.indices {
                state &+= 0x9E37_79B9_7F4A_7C15
                var z = state
                z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
                z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
                z ^= z >> 31
                buffer[i] = Float(Double(z >> 40) / Double(1 << 24)) * 2 - 1
            }
        }
    }
}
