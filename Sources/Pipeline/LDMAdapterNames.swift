// Adapter files whose UNet module names follow the original LDM / SGM checkpoint (kohya files from A1111-era
// and SDXL trainers: `lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q`, `…_middle_block_0_in_layers_2`):
// every adaptable UNet layer's LDM name, from the same correspondence the single-file loader uses
// (`LDMKeyNames.unet`), given to the adapter module indexes as aliases.
import Adapters
import DiffusionModels
import Foundation

extension LDMKeyNames {
    /// LDM module name → our path for each of `paths` (module paths, no `.weight`) that has a place in the layout.
    static func unetModuleAliases<S: Sequence>(_ paths: S, config: UNet2DConditionConfig) -> [String: String] where S.Element == String {
        let layout = LDMUNetLayout(config: config)
        var out: [String: String] = [:]
        for path in paths {
            guard let ldm = unet(path + ".weight", layout), ldm.hasSuffix(".weight") else { continue }
            out[String(ldm.dropLast(7))] = path
        }
        return out
    }
}

/// The layers of a UNet by their original LDM checkpoint names (LDM name → our path), for adapter files that
/// use them: pass as `AdapterSet(…, unetAliases:)` or `ModuleIndex(…, aliases:)`.
public func ldmModuleNames(of unet: UNet2DConditionModel) -> [String: String] {
    LDMKeyNames.unetModuleAliases(unet.namedModules().map(\.0), config: unet.config)
}

extension StableDiffusionModel {
    /// `ldmModuleNames(of: unet)`.
    public var unetLDMModuleNames: [String: String] { ldmModuleNames(of: unet) }
}
