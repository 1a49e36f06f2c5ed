// A UNet with a 4-bit frozen base, in the folder format diffusers + bitsandbytes write: `unet/config.json`
// carries `quantization_config` (quant_method "bitsandbytes", load_in_4bit, bnb_4bit_quant_type, …) and
// `diffusion_pytorch_model.safetensors` holds, for every quantized Linear, bitsandbytes' Params4bit
// serialization (`QuantState.as_dict(packed=True)`):
//   <layer>.weight                          U8 [⌈n/2⌉, 1]   two 4-bit codes per byte
//   <layer>.weight.absmax                   F32 [blocks]    (U8 [blocks] with double quantization)
//   <layer>.weight.quant_map                F32 [16]        the code book
//   <layer>.weight.nested_absmax            F32 [⌈blocks/256⌉]   (double quantization only)
//   <layer>.weight.nested_quant_map         F32 [256]            (double quantization only)
//   <layer>.weight.quant_state.bitsandbytes__nf4   U8: JSON {"quant_type", "blocksize", "dtype", "shape"
//                                           [, "nested_blocksize", "nested_dtype", "nested_offset"]}
// Which layers are quantized follows diffusers' bitsandbytes quantizer: every nn.Linear (convolutions stay F32).
import DiffusionModels
import Foundation
import NN
import SafeTensors
import TensorCore

/// What `quantization_config` in a UNet's config.json asks for.
public struct UNetQuantization: Equatable, Sendable {
    public var type: FourBitType
    public var doubleQuantization: Bool

    public init(type: FourBitType, doubleQuantization: Bool) {
        self.type = type
        self.doubleQuantization = doubleQuantization
    }

    /// The config's `quantization_config`, nil when there is none; other methods and 8-bit are refused.
    public static func read(configPath: String) throws -> UNetQuantization? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: configPath))),
              let root = object as? [String: Any], let q = root["quantization_config"] as? [String: Any] else { return nil }
        let method = q["quant_method"] as? String ?? "?"
        guard method == "bitsandbytes" else {
            throw QuantizationError.invalid("\(configPath): quantization_config quant_method \"\(method)\" is not supported "
                + "(only bitsandbytes 4-bit)")
        }
        guard q["load_in_4bit"] as? Bool == true || q["_load_in_4bit"] as? Bool == true else {
            throw QuantizationError.invalid("\(configPath): only bitsandbytes 4-bit (load_in_4bit) UNets are supported")
        }
        let name = q["bnb_4bit_quant_type"] as? String ?? "fp4"
        guard let type = FourBitType(rawValue: name) else {
            throw QuantizationError.invalid("\(configPath): bnb_4bit_quant_type \"\(name)\" is not nf4 or fp4")
        }
        return UNetQuantization(type: type, doubleQuantization: q["bnb_4bit_use_double_quant"] as? Bool ?? false)
    }

    /// The `quantization_config` entry diffusers writes for this setting (compute dtype float32).
    var configEntry: [String: Any] {
        ["_load_in_4bit": true, "_load_in_8bit": false, "bnb_4bit_compute_dtype": "float32",
         "bnb_4bit_quant_storage": "uint8", "bnb_4bit_quant_type": type.rawValue,
         "bnb_4bit_use_double_quant": doubleQuantization, "llm_int8_enable_fp32_cpu_offload": false,
         "llm_int8_has_fp16_weight": false, "llm_int8_skip_modules": NSNull(), "llm_int8_threshold": 6.0,
         "load_in_4bit": true, "load_in_8bit": false, "quant_method": "bitsandbytes"]
    }
}

extension UNet2DConditionModel {
    /// Quantizes every Linear layer as diffusers' bitsandbytes quantizer does (no module of the UNet is
    /// skipped by default) and, with `convolutions`, every Conv2d too (beyond bitsandbytes; such a UNet has no
    /// diffusers format to save in); returns how many layers. The freed F32 weights go back to the system
    /// (the tensor cache would otherwise keep them resident, and the 4-bit model would need as much memory as
    /// the F32 one).
    @discardableResult
    public func quantize(_ q: UNetQuantization, convolutions: Bool = false) throws -> Int {
        var count = 0
        defer { if count > 0 { HeapTrim.releaseFreePages() } }
        for (_, m) in namedModules() {
            if let linear = m as? Linear, !linear.isQuantized {
                try linear.quantize(q.type, compressStatistics: q.doubleQuantization)
                count += 1
            } else if convolutions, let conv = m as? Conv2d, !conv.isQuantized {
                try conv.quantize(q.type, compressStatistics: q.doubleQuantization)
                count += 1
            }
        }
        return count
    }
}

/// Reading and writing the 4-bit tensors of a checkpoint.
public enum QuantizedCheckpoint {
    static let stateSuffix = ".weight.quant_state.bitsandbytes__"

    /// Loads `file` into `model`: the 4-bit layers from their Params4bit tensors, everything else strictly
    /// through `load(stateDict:)`.
    public static func load(_ model: Module, from file: SafeTensorsFile, path: String) throws {
        var consumed = Set<String>()
        for name in file.names where name.contains(stateSuffix) {
            let layerPath = String(name[..<name.range(of: stateSuffix)!.lowerBound])
            let (q, used) = try fourBitWeight(layerPath, in: file, path: path)
            guard let linear = model.module(at: layerPath) as? Linear else {
                throw QuantizationError.invalid("\(path): \(layerPath).weight is 4-bit but \(layerPath) is not a Linear layer")
            }
            guard q.shape == [linear.outFeatures, linear.inFeatures] else {
                throw QuantizationError.invalid("\(path): \(layerPath).weight has shape \(q.shape) in its quant state, "
                    + "the layer needs \([linear.outFeatures, linear.inFeatures])")
            }
            linear.setQuantizedWeight(q)
            consumed.formUnion(used)
        }
        var stateDict: [String: Tensor] = [:]
        for name in file.names where !consumed.contains(name) {
            if try file.info(name).dtype == .u8 {
                throw QuantizationError.invalid("\(path): \(name) is U8 (4-bit codes) but has no "
                    + "\(name).quant_state.bitsandbytes__nf4 or __fp4 quant state")
            }
            stateDict[name] = try file.tensor(name)
        }
        try model.load(stateDict: stateDict)
    }

    /// The FourBitTensor of `<layer>.weight` and the keys it used.
    static func fourBitWeight(_ layer: String, in file: SafeTensorsFile, path: String) throws -> (FourBitTensor, [String]) {
        let w = layer + ".weight"
        let stateKey = file.names.first { $0.hasPrefix(w + ".quant_state.bitsandbytes__") }!
        func require(_ key: String) throws -> String {
            guard (try? file.info(key)) != nil else {
                throw QuantizationError.invalid("\(path): \(w) is 4-bit but its quant state lacks \(key)")
            }
            return key
        }
        let json = try file.withRawBytes(of: stateKey) { Data($0) }
        guard let state = try? JSONSerialization.jsonObject(with: json) as? [String: Any] else {
            throw QuantizationError.invalid("\(path): \(stateKey) is not a JSON quant state")
        }
        guard let typeName = state["quant_type"] as? String, let type = FourBitType(rawValue: typeName),
              stateKey.hasSuffix("__" + typeName) else {
            throw QuantizationError.invalid("\(path): \(stateKey): quant_type \(state["quant_type"] ?? "missing") is not nf4 or fp4")
        }
        guard let blockSize = state["blocksize"] as? Int, let shape = state["shape"] as? [Int] else {
            throw QuantizationError.invalid("\(path): \(stateKey) lacks blocksize or shape")
        }
        var used = [stateKey, try require(w), try require(w + ".absmax"), try require(w + ".quant_map")]
        let packed = try file.withRawBytes(of: w) { Array($0) }
        let map = try file.tensor(w + ".quant_map").scalars
        guard map == type.code else {       // == treats FP4's −0 entry as the +0 it decodes to
            throw QuantizationError.invalid("\(path): \(w).quant_map is not bitsandbytes' \(typeName) code book")
        }
        let absmax: FourBitTensor.Absmax
        if let nestedBlockSize = state["nested_blocksize"] as? Int {
            guard let offset = (state["nested_offset"] as? NSNumber)?.floatValue else {
                throw QuantizationError.invalid("\(path): \(stateKey) has nested_blocksize but no nested_offset")
            }
            used += [try require(w + ".nested_absmax"), try require(w + ".nested_quant_map")]
            guard try file.info(w + ".absmax").dtype == .u8 else {
                throw QuantizationError.invalid("\(path): \(w).absmax must be U8 with double quantization")
            }
            let codes = try file.withRawBytes(of: w + ".absmax") { Array($0) }
            absmax = .nested(NestedAbsmax(codes: codes, absmax: try file.tensor(w + ".nested_absmax").scalars,
                                          offset: offset, blockSize: nestedBlockSize,
                                          map: try file.tensor(w + ".nested_quant_map").scalars))
        } else {
            absmax = .plain(try file.tensor(w + ".absmax").scalars)
        }
        let q = try FourBitTensor(type: type, shape: shape, blockSize: blockSize, packed: packed, absmax: absmax,
                                  name: "\(path): \(w)")
        return (q, used)
    }

    /// bitsandbytes' packed quant-state JSON, keys in its order.
    static func stateJSON(_ q: FourBitTensor) -> String {
        var s = "{\"quant_type\": \"\(q.type.rawValue)\", \"blocksize\": \(q.blockSize), \"dtype\": \"float32\", "
            + "\"shape\": [\(q.shape.map(String.init).joined(separator: ", "))]"
        if case .nested(let n) = q.absmax {
            s += ", \"nested_blocksize\": \(n.blockSize), \"nested_dtype\": \"float32\", \"nested_offset\": \(Double(n.offset))"
        }
        return s + "}"
    }

    /// Adds `<layer>.weight…` of every 4-bit Linear of `model` to `writer`.
    public static func add(_ model: Module, to writer: inout SafeTensorsWriter) throws {
        for (path, linear) in model.quantizedLinearLayers() {
            guard let q = linear.quantizedWeight else { continue }
            let w = path + ".weight"
            try writer.add(w, dtype: .u8, shape: [q.packed.count, 1], bytes: q.packed)
            switch q.absmax {
            case .plain(let a):
                try writer.add(w + ".absmax", try Tensor(shape: [a.count], scalars: a))
            case .nested(let n):
                try writer.add(w + ".absmax", dtype: .u8, shape: [n.codes.count], bytes: n.codes)
                try writer.add(w + ".nested_absmax", try Tensor(shape: [n.absmax.count], scalars: n.absmax))
                try writer.add(w + ".nested_quant_map", try Tensor(shape: [256], scalars: n.map))
            }
            try writer.add(w + ".quant_map", try Tensor(shape: [16], scalars: q.code))
            let json = Array(stateJSON(q).utf8)
            try writer.add(w + ".quant_state.bitsandbytes__" + q.type.rawValue, dtype: .u8, shape: [json.count], bytes: json)
        }
    }

    /// Writes `unet` as diffusers saves a bitsandbytes 4-bit UNet: `dir/config.json` (the source config plus
    /// `quantization_config`) and `dir/diffusion_pytorch_model.safetensors`, each atomically.
    public static func saveUNet(_ unet: UNet2DConditionModel, configPath: String, quantization: UNetQuantization,
                                to dir: URL) throws {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        guard var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: configPath)))
                as? [String: Any] else {
            throw QuantizationError.invalid("\(configPath): not a JSON object")
        }
        config["quantization_config"] = quantization.configEntry
        let json = try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys])
        var writer = SafeTensorsWriter(metadata: ["format": "pt"])
        for (key, value) in unet.stateDict() { try writer.add(key, value) }
        try add(unet, to: &writer)
        try writer.write(to: dir.appendingPathComponent("diffusion_pytorch_model.safetensors").path)
        try json.write(to: dir.appendingPathComponent("config.json"), options: .atomic)
    }
}

extension QuantizedCheckpoint {
    /// Writes a diffusers pipeline folder at `destination` whose UNet is `model`'s 4-bit UNet: every other
    /// component is copied from the source folder `source`, unet/ is written by `saveUNet`. The folder appears
    /// complete or not at all (written beside it, then renamed); an existing `destination` is refused.
    public static func savePipeline(_ model: StableDiffusionModel, source: String, to destination: String) throws {
        let fm = FileManager.default
        var isFolder: ObjCBool = false
        guard fm.fileExists(atPath: source, isDirectory: &isFolder), isFolder.boolValue,
              fm.fileExists(atPath: source + "/unet/config.json") else {
            throw QuantizationError.invalid("--save-quantized needs a diffusers folder as the model; \(source) is not one")
        }
        guard !fm.fileExists(atPath: destination) else {
            throw QuantizationError.invalid("--save-quantized \(destination): already exists")
        }
        guard model.unet.quantizedConvLayers().isEmpty else {
            throw QuantizationError.invalid("--save-quantized: 4-bit convolutions have no diffusers + bitsandbytes format; "
                + "save without --quantize-convs")
        }
        guard let first = model.unet.quantizedLinearLayers().first?.1.quantizedWeight else {
            throw QuantizationError.invalid("--save-quantized needs a 4-bit UNet: add --quantize nf4|fp4")
        }
        let nested: Bool
        if case .nested = first.absmax { nested = true } else { nested = false }
        let target = URL(fileURLWithPath: destination)
        let temporary = target.deletingLastPathComponent().appendingPathComponent(".\(target.lastPathComponent).partial-\(UUID().uuidString)")
        do {
            try fm.createDirectory(at: temporary, withIntermediateDirectories: true)
            for item in try fm.contentsOfDirectory(atPath: source) where item != "unet" {
                try fm.copyItem(atPath: source + "/" + item, toPath: temporary.appendingPathComponent(item).path)
            }
            try saveUNet(model.unet, configPath: source + "/unet/config.json",
                         quantization: UNetQuantization(type: first.type, doubleQuantization: nested),
                         to: temporary.appendingPathComponent("unet"))
            try fm.moveItem(at: temporary, to: target)
        } catch {
            try? fm.removeItem(at: temporary)
            throw error
        }
    }
}
