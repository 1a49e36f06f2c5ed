// QLoRA's frozen base: a Linear layer whose weight lives in bitsandbytes' 4-bit format (NF4 or FP4, blocks of
// 64, double-quantized absmax), as `bnb.nn.Linear4bit` holds it. The forward GEMM decodes packed panels of the
// weight on the fly; input gradients flow through, so adapters on top train; the weight never gets one.
import Autograd
import TensorCore

/// Refusals of operations that need an F32 base weight.
public enum QuantizedLayerError: Error, CustomStringConvertible, Equatable {
    case fusingIntoQuantized(String)

    public var description: String {
        switch self {
        case .fusingIntoQuantized(let what):
            return "cannot fuse an adapter into \(what) whose weight is 4-bit quantized: the base is frozen in "
                + "NF4/FP4; load the base unquantized to fuse"
        }
    }
}

extension Linear {
    /// Whether the weight is held in 4-bit storage.
    public var isQuantized: Bool { quantizedWeight != nil }

    /// Replaces the F32 weight by its 4-bit form (bitsandbytes' `quantize_4bit`, blocks of 64); the F32
    /// storage is released. Refused on a layer with a baked (fused) delta.
    public func quantize(_ type: FourBitType, blockSize: Int = 64, compressStatistics: Bool = true) throws {
        if quantizedWeight != nil { return }
        if unbakedWeight != nil { throw QuantizedLayerError.fusingIntoQuantized("a Linear layer with a fused adapter") }
        setQuantizedWeight(try FourBitTensor.quantize(weight.value, type: type, blockSize: blockSize,
                                                      compressStatistics: compressStatistics))
    }

    /// Installs an already quantized weight of shape [out, in] (from a 4-bit checkpoint).
    public func setQuantizedWeight(_ q: FourBitTensor) {
        quantizedWeight = q
        weight.value = Tensor(zeros: [0])
        weight.requiresGrad = false
        weight.zeroGrad()
    }
}

extension Conv2d {
    /// Whether the weight is held in 4-bit storage.
    public var isQuantized: Bool { quantizedWeight != nil }

    /// Replaces the F32 weight by its 4-bit form, quantized in the kernel's HWIO order (blocks of 64 along
    /// Cout, then Cin, …): beyond bitsandbytes, which leaves convolutions in full precision.
    public func quantize(_ type: FourBitType, blockSize: Int = 64, compressStatistics: Bool = true) throws {
        if quantizedWeight != nil { return }
        if unbakedWeight != nil { throw QuantizedLayerError.fusingIntoQuantized("a Conv2d layer with a fused adapter") }
        quantizedWeight = try FourBitTensor.quantize(weight.value, type: type, blockSize: blockSize,
                                                     compressStatistics: compressStatistics)
        weight.value = Tensor(zeros: [0])
        weight.requiresGrad = false
        weight.zeroGrad()
    }
}

/// What the 4-bit layers of a tree hold.
public struct QuantizedSummary: Equatable, Sendable {
    /// Quantized layers and the weights they hold.
    public var layers = 0
    public var weights = 0
    /// Bytes of their 4-bit storage (codes, absmax, nested state).
    public var bytes = 0

    /// `quantized base: 686 layers, 859,520,964 weights in 4-bit (nf4): 445.2 MB (F32: 3438.1 MB)`
    public func line(type: String) -> String {
        let mb = { (b: Int) in String(format: "%.1f MB", Double(b) / 1_048_576) }
        return "quantized base: \(layers) layers, \(grouped(weights)) weights in 4-bit (\(type)): \(mb(bytes)) "
            + "(F32: \(mb(4 * weights)))"
    }
}

extension Module {
    /// Quantizes every Linear layer of the tree whose key path `include` accepts (bitsandbytes + diffusers:
    /// every `nn.Linear` not listed in the skipped modules). Returns the key paths quantized.
    @discardableResult
    public func quantizeLinearLayers(_ type: FourBitType, where include: (String) -> Bool = { _ in true }) throws -> [String] {
        var done: [String] = []
        for (path, m) in namedModules() {
            guard let linear = m as? Linear, !linear.isQuantized, include(path) else { continue }
            try linear.quantize(type)
            done.append(path)
        }
        return done
    }

    /// Every 4-bit Linear of the tree with its key path.
    public func quantizedLinearLayers() -> [(String, Linear)] {
        namedModules().compactMap { path, m in
            (m as? Linear).flatMap { $0.isQuantized ? (path, $0) : nil }
        }
    }

    /// Every 4-bit Conv2d of the tree with its key path.
    public func quantizedConvLayers() -> [(String, Conv2d)] {
        namedModules().compactMap { path, m in
            (m as? Conv2d).flatMap { $0.isQuantized ? (path, $0) : nil }
        }
    }

    /// Counts of the tree's 4-bit layers (Linear and Conv2d).
    public func quantizedSummary() -> QuantizedSummary {
        var s = QuantizedSummary()
        let weights = quantizedLinearLayers().compactMap(\.1.quantizedWeight) + quantizedConvLayers().compactMap(\.1.quantizedWeight)
        for q in weights {
            s.layers += 1
            s.weights += q.count
            s.bytes += q.storageBytes
        }
        return s
    }
}
