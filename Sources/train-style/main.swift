// train-style: DreamBooth-LoRA training (`train-style IMAGES_DIR --token sks ...`). Argument handling
// lives in the CLI module.
import CLI
import Foundation

let arguments = Array(CommandLine.arguments.dropFirst())
var code: Int32 = 0
let failure = runCommand("train-style") { code = try TrainStyleCommand.run(arguments) }
exit(failure != 0 ? failure : code)
