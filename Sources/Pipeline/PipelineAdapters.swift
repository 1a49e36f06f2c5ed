// What the adapter tools need from a pipeline folder without loading its models: module indexes from the
// UNet and text-encoder weight headers (for key accounting and kohya name resolution), and a copy of the
// folder with adapters baked into those weights (`lora merge --into-base`).
import Adapters
import DiffusionModels
import Foundation
import SafeTensors
import TensorCore

extension DiffusersFolder {
    /// The folder's component for an adapter component (`unet`, `text_encoder`, `text_encoder_2`).
    static func name(_ component: ModelComponent) -> String { component.rawValue }

    /// Module indexes of the UNet and text encoder(s), built from their weight files' headers (no tensor data is
    /// read). A folder with neither is an error; one with only one gives its index alone.
    public func moduleIndexes() throws -> [ModuleIndex] {
        let files = try [ModelComponent.unet, .textEncoder, .textEncoder2].compactMap { c in try weightsIfPresent(Self.name(c)).map { (c, $0) } }
        guard !files.isEmpty else {
            throw PipelineError.missingComponent(component: "unet", folder: url.path,
                                                 file: "unet/ or text_encoder/ safetensors weights")
        }
        return try files.map { c, file in
            let st = try SafeTensorsFile(path: file.path)
            let shapes = Dictionary(uniqueKeysWithValues: st.tensors.map { ($0.name, $0.shape) })
            var aliases: [String: String] = [:]
            // UNet modules by their original LDM names too (kohya files from A1111-era and SGM trainers).
            if c == .unet, let config = try? UNet2DConditionConfig(contentsOf: self.file("unet", "config.json")) {
                aliases = LDMKeyNames.unetModuleAliases(shapes.keys.filter { $0.hasSuffix(".weight") }.map { String($0.dropLast(7)) },
                                                        config: config)
            }
            return ModuleIndex(component: c, stateDictShapes: shapes, aliases: aliases)
        }
    }

    /// Writes a copy of the pipeline to `output` with adapters baked into the UNet and text encoder. The copy
    /// is assembled in a temporary folder beside `output` and renamed into place, so `output` appears whole or
    /// not at all. Tensors keep their dtypes; unchanged tensors keep their bytes.
    public func writeFused(_ adapters: [(ResolvedLoRA, Float)], to output: String) throws {
        let fm = FileManager.default
        guard !fm.fileExists(atPath: output) else { throw PipelineError.invalidRequest("\(output) already exists") }
        let staging = output + ".partial-\(getpid())"
        try? fm.removeItem(atPath: staging)
        do {
            try fm.copyItem(atPath: url.path, toPath: staging)
            for c in [ModelComponent.unet, .textEncoder, .textEncoder2] {
                guard let file = try weightsIfPresent(Self.name(c)),
                      adapters.contains(where: { $0.0.modules.contains { $0.component == c } }) else { continue }
                let st = try SafeTensorsFile(path: file.path)
                var weights = try st.loadAll()
                let before = weights
                try LoRAAlgebra.fuse(into: &weights, adapters, component: c)
                var writer = SafeTensorsWriter(metadata: st.metadata)
                for info in st.tensors {
                    let changed = weights[info.name].map { $0.scalars != before[info.name]!.scalars } ?? false
                    if changed, [.f32, .f16, .bf16].contains(info.dtype) {
                        try writer.add(info.name, weights[info.name]!, as: info.dtype)
                    } else {
                        let bytes = try st.withRawBytes(of: info.name) { Array($0) }
                        try writer.add(info.name, dtype: info.dtype, shape: info.shape, bytes: bytes)
                    }
                }
                try writer.write(to: staging + "/" + Self.name(c) + "/" + file.lastPathComponent)
            }
            try fm.moveItem(atPath: staging, toPath: output)
        } catch {
            try? fm.removeItem(atPath: staging)
            throw error
        }
    }
}
