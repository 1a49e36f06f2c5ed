// The parts of a diffusers pipeline folder the `lora` command reads and writes: the UNet and text-encoder
// weight files, as tensor shapes (for key accounting) and as state dicts (for fusing).
import Adapters
import Foundation
import SafeTensors
import TensorCore

struct PipelineFolder {
    let path: String

    /// `unet/diffusion_pytorch_model.safetensors`, `text_encoder/model.safetensors` (nil when absent).
    func weightsFile(_ component: ModelComponent) -> String? {
        let names = component == .unet ? ["diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors"]
                                       : ["model.safetensors", "model.fp16.safetensors"]
        return names.map { "\(path)/\(component.rawValue)/\($0)" }.first { FileManager.default.fileExists(atPath: $0) }
    }

    /// Module indexes built from the weight files' headers (no tensor data is read).
    func indexes() throws -> [ModuleIndex] {
        guard weightsFile(.unet) != nil || weightsFile(.textEncoder) != nil else {
            throw AdaptersError.invalidRequest("\(path): no unet/ or text_encoder/ safetensors weights (diffusers layout expected)")
        }
        return try [ModelComponent.unet, .textEncoder].compactMap { c in
            try weightsFile(c).map { file in
                let st = try SafeTensorsFile(path: file)
                return ModuleIndex(component: c, stateDictShapes: Dictionary(uniqueKeysWithValues: st.tensors.map { ($0.name, $0.shape) }))
            }
        }
    }

    /// Writes a copy of the pipeline to `output` with adapters baked into the UNet and text encoder. The copy
    /// is assembled in a temporary folder beside `output` and renamed into place, so `output` appears whole or
    /// not at all. Tensors keep their dtypes.
    func writeFused(_ adapters: [(ResolvedLoRA, Float)], to output: String) throws {
        let fm = FileManager.default
        guard !fm.fileExists(atPath: output) else { throw AdaptersError.invalidRequest("\(output) already exists") }
        let staging = output + ".partial-\(getpid())"
        try? fm.removeItem(atPath: staging)
        do {
            try fm.copyItem(atPath: path, toPath: staging)
            for c in [ModelComponent.unet, .textEncoder] {
                guard let file = weightsFile(c), adapters.contains(where: { $0.0.modules.contains { $0.component == c } }) else { continue }
                let st = try SafeTensorsFile(path: file)
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
                let target = staging + "/" + c.rawValue + "/" + (file as NSString).lastPathComponent
                try writer.write(to: target)
            }
            try fm.moveItem(atPath: staging, toPath: output)
        } catch {
            try? fm.removeItem(atPath: staging)
            throw error
        }
    }
}
