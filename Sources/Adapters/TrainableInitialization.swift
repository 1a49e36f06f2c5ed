// Continuing training from an existing adapter file (kohya's --network_weights): the trainable adapter's pairs
// take the file's tensors. The file must fit the run exactly: the same layers (targets, and the text encoder
// when it is trained), the same rank and α on each; anything else is refused with one message naming the
// first layer that differs, and nothing is changed.
import NN
import TensorCore

extension AdapterSet {
    /// Sets the pairs of trainable adapter `name` (made by `addTrainable`) to the weights of `file`.
    public func initializeTrainable(_ name: String, from file: LoRAFile) throws {
        func refuse(_ why: String) -> AdaptersError { .invalidRequest("--init-lora \(file.path): \(why)") }
        for encoder in [ModelComponent.textEncoder, .textEncoder2]
        where file.modules.contains(where: { $0.component == encoder }) && stacks[encoder]?.adapterNames.contains(name) != true {
            throw refuse("it has \(encoder.rawValue) layers but this run trains the UNet only (add --train-text-encoder)")
        }
        let resolved: ResolvedLoRA
        do { resolved = try file.resolve(against: stacks.values.map(\.index)) } catch { throw refuse("\(error)") }
        if let stray = resolved.accounting.unmatched.first {
            throw refuse("\(resolved.accounting.unmatched.count) tensors fit no layer of this model, e.g. \(stray)")
        }
        var plan: [(LoRAPair, LoRAPair)] = []
        for stack in stacks.values.sorted(by: { $0.component.rawValue < $1.component.rawValue }) {
            let trained = stack.pairs(of: name)
            guard !trained.isEmpty else { continue }
            let fromFile = Dictionary(resolved.modules.filter { $0.component == stack.component }.map { ($0.path, $0) },
                                      uniquingKeysWith: { a, _ in a })
            let trainedPaths = Set(trained.map(\.path))
            if let extra = fromFile.keys.sorted().first(where: { !trainedPaths.contains($0) }) {
                throw refuse("it adapts \(stack.component.rawValue) layer \(extra), which this run does not train "
                    + "(its layers differ from --targets)")
            }
            for (path, branch, pair) in trained {
                guard let m = fromFile[path] else {
                    throw refuse("it has no weights for \(stack.component.rawValue) layer \(path), which this run trains "
                        + "(\(fromFile.count) of \(trained.count) layers present; its layers differ from --targets)")
                }
                guard m.weights.kind == .lora else {
                    throw refuse("\(path) is a \(m.weights.kind.rawValue) module; a run continues from a plain LoRA file")
                }
                guard m.weights.rank == pair.rank else {
                    throw refuse("rank \(m.weights.rank) at \(path), this run's --rank is \(pair.rank)")
                }
                guard m.weights.effectiveAlpha == pair.alpha else {
                    throw refuse("alpha \(m.weights.effectiveAlpha) at \(path), this run's --alpha is \(pair.alpha) (pass --alpha \(m.weights.effectiveAlpha))")
                }
                plan.append((pair, branch.makePair(name: name, down: m.weights.down, up: m.weights.up, alpha: pair.alpha)))
            }
        }
        guard !plan.isEmpty else { throw refuse("this run has no trainable adapter '\(name)'") }
        for (pair, loaded) in plan {
            pair.down.value = loaded.down.value
            pair.up.value = loaded.up.value
        }
    }
}
