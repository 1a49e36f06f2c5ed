// Strict state-dict loading and saving: a walk of the module tree.
//
// Every tensor must be used, every parameter set, every shape match; otherwise nothing is changed and
// the error names the full key path and the shapes. Conversions between a layer's internal layout and
// the checkpoint's (Conv2d: OIHW) happen here, at the boundary, so checkpoint files load unchanged.
import Autograd
import TensorCore

public enum StateDictError: Error, CustomStringConvertible, Equatable {
    /// The model has a parameter that the state dict lacks.
    case missingParameter(key: String, expectedShape: [Int])
    /// The state dict has a tensor that no parameter takes.
    case unusedTensor(key: String, shape: [Int])
    /// A tensor's shape differs from its parameter's checkpoint shape.
    case shapeMismatch(key: String, expected: [Int], actual: [Int])
    /// More than one of the above, in tree order (unused tensors last, sorted by key).
    case multiple([StateDictError])

    public var description: String {
        switch self {
        case .missingParameter(let k, let s):
            return "missing parameter '\(k)' (expected shape \(s)) in the state dict"
        case .unusedTensor(let k, let s):
            return "unused tensor '\(k)' (shape \(s)): no parameter of the model has this key"
        case .shapeMismatch(let k, let e, let a):
            return "wrong shape for '\(k)': the model expects \(e), the state dict has \(a)"
        case .multiple(let errors):
            let shown = errors.prefix(20).map { "  " + $0.description }.joined(separator: "\n")
            let more = errors.count > 20 ? "\n  … and \(errors.count - 20) more" : ""
            return "\(errors.count) problems loading the state dict:\n" + shown + more
        }
    }
}

extension Module {
    /// Every checkpoint parameter by key path, in checkpoint layout.
    public func stateDict() -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for slot in parameterSlots() {
            out[slot.key] = slot.owner.checkpointValue(ofParameter: slot.name, slot.parameter)
        }
        return out
    }

    /// Sets every parameter from `stateDict`. Strict (the default): a missing parameter or an unused tensor
    /// (one that is neither a parameter nor listed by `ignoredStateDictKeys()`) is an error; a wrong shape
    /// always is. On error nothing has been changed.
    public func load(stateDict: [String: Tensor], strict: Bool = true) throws {
        var problems: [StateDictError] = []
        var assignments: [(ParameterSlot, Tensor)] = []
        var used = Set<String>()
        for slot in parameterSlots() {
            let expected = slot.owner.checkpointShape(ofParameter: slot.name, slot.parameter)
            guard let tensor = stateDict[slot.key] else {
                if strict { problems.append(.missingParameter(key: slot.key, expectedShape: expected)) }
                continue
            }
            used.insert(slot.key)
            guard tensor.shape == expected else {
                problems.append(.shapeMismatch(key: slot.key, expected: expected, actual: tensor.shape))
                continue
            }
            assignments.append((slot, tensor))
        }
        for (path, m) in namedModules() {
            for key in m.ignoredStateDictKeys() { used.insert(joinKey(path, key)) }
        }
        if strict {
            for key in stateDict.keys.sorted() where !used.contains(key) {
                problems.append(.unusedTensor(key: key, shape: stateDict[key]?.shape ?? []))
            }
        }
        if problems.count == 1 { throw problems[0] }
        if problems.count > 1 { throw StateDictError.multiple(problems) }
        for (slot, tensor) in assignments {
            slot.owner.assignParameter(slot.name, slot.parameter, fromCheckpoint: tensor)
        }
    }
}
