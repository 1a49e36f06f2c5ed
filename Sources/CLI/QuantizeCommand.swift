// `generate --quantize nf4|fp4 --save-quantized DIR`: the model as a diffusers folder whose UNet is saved in
// bitsandbytes' 4-bit format (QuantizedCheckpoint), loadable here and by diffusers + bitsandbytes.
import Foundation
import NN
import Pipeline

extension GenerateCommand {
    static func saveQuantized(_ args: ParsedArguments, to destination: String) throws {
        let source = try pipelineFolder(args.string("pipeline"))
        let model = try ModelOptions(args).load(path: source, program: "generate")
        try QuantizedCheckpoint.savePipeline(model, source: source, to: destination)
        printError("generate: wrote \(destination) (UNet \(model.unet.quantizedSummary().line(type: args.string("quantize") ?? "4-bit")))")
    }
}
