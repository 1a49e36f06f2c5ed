// generate's adapter options: `--lora FILE[:w]` / `--lora FILE:unet=0.8,te=0.3` (repeatable), `<lora:name:w>`
// tags in prompts, `--lora-dir DIR` (default outputs/adapters) and trigger words (`--no-auto-lora` turns
// them off). `Pipeline.AdapterSession` loads them into the models once; each prompt's weights go with its
// request, so one batch can give every image its own adapters.
import Adapters
import Foundation
import Pipeline

/// The adapter requests of a command line, checked before any model is loaded.
struct AdapterOptions {
    let flags: [AdapterRequest]
    let folder: AdapterFolder
    let automatic: Bool

    init(_ args: ParsedArguments) throws {
        do {
            flags = try (args.values["lora"] ?? []).map(AdapterRequest.parseFlag)
        } catch let error as AdaptersError {
            throw CommandLineError.usage("--lora \(error)")
        }
        folder = AdapterFolder(path: args.string("lora-dir") ?? AdapterFolder.defaultPath)
        if let given = args.string("lora-dir"), !FileManager.default.fileExists(atPath: given) {
            printError("generate: warning: --lora-dir \(given) does not exist (no adapters found by name or trigger word there)")
        }
        automatic = !args.has("no-auto-lora")
    }

    /// The adapters for one prompt, each with its file: flags, then the prompt's tags (a tag overrides a flag
    /// for the same file), then adapters whose trigger phrase the prompt contains and nothing names.
    func requests(for prompt: String) throws -> [(request: AdapterRequest, file: String)] {
        let tags = try AdapterRequest.extractTags(from: prompt)
        var chosen: [(request: AdapterRequest, file: String)] = []
        for var request in flags + tags.requests {
            // A tag may name an adapter by the name a flag gave it (`--lora style=FILE` and `<lora:style:0.5>`).
            let named = request.origin == .prompt ? flags.first { $0.label == request.name } : nil
            if let named { request.label = named.label }
            let file = try folder.locate(named?.name ?? request.name)
            chosen.removeAll { $0.file == file }
            chosen.append((request, file))
        }
        guard automatic else { return chosen }
        let explicit = chosen.map { AdapterRequest(name: $0.file) } + chosen.map(\.request)
        return chosen + folder.triggered(by: tags.prompt, excluding: explicit).map { ($0, $0.name) }
    }
}
