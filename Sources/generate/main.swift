// generate: text-to-image from the command line (see `generate --help`).
import CLI
import Foundation

exit(GenerateCommand.main(Array(CommandLine.arguments.dropFirst())))
