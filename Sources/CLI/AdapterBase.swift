// The base model whose module tree resolves a kohya adapter's names (kohya replaces the dots of module paths
// by `_`, so `lora convert --to diffusers` needs the tree): --pipeline, else the embedded model when the
// adapter's metadata names it (`ss_base_model`, which train-style writes), else a usage error saying what to add.
import Foundation

public enum AdapterBase {
    public static func pipeline(given: String?, metadata: [String: String],
                                embedded: (() throws -> String)? = nil) throws -> String {
        if let given { return given }
        let named = metadata["ss_base_model"]
        let lookup = embedded ?? { try GenerateCommand.pipelineFolder(nil) }
        if let named, let found = try? lookup(), URL(fileURLWithPath: found).lastPathComponent == named { return found }
        throw CommandLineError.usage("kohya names lose their dots; give --pipeline DIR, the base model the adapter was trained on"
            + (named.map { " (its metadata names \"\($0)\")" } ?? "") + ", to map them onto module paths")
    }
}
