// MappedLoading: strict loading of a module tree from tensors that a file names differently (an original-
// layout checkpoint), one tensor at a time straight from the memory-mapped file.
//
// Every parameter of the tree gets a source (a file key, maybe reshaped, or rows of a fused tensor); every
// file key under the component's prefix must be someone's source or listed as skipped. Names and shapes are
// checked from the header before any data is read, and errors name the file's keys. Tensors are converted to
// Float32 and assigned one by one, so loading holds the model plus one tensor (the file's pages are
// released as they are converted: `SafeTensorsFile.tensor`).

import Autograd
import Foundation
import NN
import SafeTensors
import TensorCore

/// Where one of our parameters comes from in a file.
enum TensorSource: Equatable {
    /// The whole tensor, reshaped to the parameter's shape when the element counts agree
    /// (LDM's 1×1 convolutions [C, C, 1, 1] for our linear layers [C, C]).
    case whole(String)
    /// Rows [part·n, (part + 1)·n) of a tensor that stacks `parts` parameters along its first axis.
    case rows(String, part: Int, parts: Int)

    var key: String {
        switch self {
        case .whole(let k), .rows(let k, _, _): return k
        }
    }
}

struct MappedLoader {
    let file: SafeTensorsFile
    /// Prepended to every source key (`model.diffusion_model.`, or "" for a standalone file).
    let prefix: String

    /// A parameter of the tree with its owner, so it can be assigned alone.
    private struct Slot {
        let key: String
        let owner: Module
        let name: String
        let variable: Variable
        let shape: [Int]
    }

    /// Loads every parameter of `module` from the file. `source` names each of our keys' origin (nil: the key
    /// has no place in the layout, an error); `fileKeys` are the file keys (without prefix) this component
    /// must consume, apart from `skipped` ones.
    func load(_ module: Module, fileKeys: [String], skipped: (String) -> Bool = { _ in false },
              source: (String) -> TensorSource?) throws {
        let slots = Self.slots(module)
        var problems: [StateDictError] = []
        var plan: [(Slot, TensorSource)] = []
        var used = Set<String>()
        for slot in slots {
            guard let from = source(slot.key) else {
                problems.append(.missingParameter(key: "(\(slot.key): no place in the original layout)", expectedShape: slot.shape))
                continue
            }
            guard let info = try? file.info(prefix + from.key) else {
                problems.append(.missingParameter(key: prefix + from.key, expectedShape: slot.shape))
                continue
            }
            used.insert(from.key)
            let count = slot.shape.reduce(1, *)
            let fits: Bool
            switch from {
            case .whole:
                fits = info.shape == slot.shape || (info.shape.reduce(1, *) == count && info.shape.count == 4
                                                    && info.shape[2...].allSatisfy { $0 == 1 } && slot.shape.count == 2)
            case .rows(_, _, let parts):
                fits = !info.shape.isEmpty && info.shape[0] % parts == 0
                    && [info.shape[0] / parts] + Array(info.shape.dropFirst()) == slot.shape
            }
            if !fits { problems.append(.shapeMismatch(key: prefix + from.key, expected: slot.shape, actual: info.shape)) }
            plan.append((slot, from))
        }
        for key in fileKeys.sorted() where !used.contains(key) && !skipped(key) {
            problems.append(.unusedTensor(key: prefix + key, shape: (try? file.info(prefix + key).shape) ?? []))
        }
        if problems.count == 1 { throw problems[0] }
        if problems.count > 1 { throw StateDictError.multiple(problems) }

        var fused: [String: Tensor] = [:]     // a fused tensor is read once for its parts
        var sinceTrim = 0
        defer { HeapTrim.releaseFreePages() }
        for (slot, from) in plan {
            let tensor: Tensor
            switch from {
            case .whole(let key):
                tensor = try file.tensor(prefix + key).reshaped(slot.shape)
            case .rows(let key, let part, let parts):
                let whole: Tensor
                if let cached = fused[key] { whole = cached } else { whole = try file.tensor(prefix + key); fused[key] = whole }
                tensor = Self.rows(whole, part: part, parts: parts, shape: slot.shape)
            }
            slot.owner.assignParameter(slot.name, slot.variable, fromCheckpoint: tensor)
            // Replaced and converted buffers are freed into the heap; hand their pages back now and then so
            // that resident memory stays at the model's size (measured: 1.27x → ~1.0x the F32 bytes on SD-1.5).
            sinceTrim += tensor.count * 4
            if sinceTrim >= HeapTrim.interval {
                HeapTrim.releaseFreePages()
                sinceTrim = 0
            }
        }
    }

    /// Rows [part·n, (part + 1)·n) of `whole` (n = its first dimension / parts) as a tensor of `shape`.
    private static func rows(_ whole: Tensor, part: Int, parts: Int, shape: [Int]) -> Tensor {
        let count = shape.reduce(1, *)
        return whole.withUnsafeBufferPointer { source in
            Tensor(shape: shape) { out in
                out.baseAddress!.initialize(from: source.baseAddress! + part * count, count: count)
            }
        }
    }

    /// Every checkpoint parameter of the tree with its owner and checkpoint shape, in tree order.
    private static func slots(_ root: Module) -> [Slot] {
        root.namedModules().flatMap { path, m in
            m.namedDirectParameters().map { name, variable in
                Slot(key: path.isEmpty ? name : path + "." + name, owner: m, name: name, variable: variable,
                     shape: m.checkpointShape(ofParameter: name, variable))
            }
        }
    }
}

/// Hands the tensor cache's blocks back (`TensorMemory.trim`), then glibc's `malloc_trim(0)`: returns the free
/// pages inside the heap to the system (large freed blocks stay in the heap once glibc's dynamic mmap threshold
/// has grown). Looked up at run time; a no-op elsewhere.
enum HeapTrim {
    static let interval = 64 << 20

    private static let trim: (@convention(c) (Int) -> Int32)? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (Int) -> Int32).self)
    }()

    static func releaseFreePages() {
        TensorMemory.shared.trim()
        _ = trim?(0)
    }
}
