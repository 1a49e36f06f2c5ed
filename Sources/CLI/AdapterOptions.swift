// generate's adapter options: `--lora FILE[:w]` / `--lora FILE:unet=0.8,te=0.3` (repeatable), `<lora:name:w>`
// tags in prompts, `--lora-dir DIR` (default outputs/adapters) and trigger words (`--no-auto-lora` turns
// them off). Adapters are loaded into the models once; each prompt's weights go with its request, so one
// batch can give every image its own adapters. The base weights are never reloaded.
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
        automatic = !args.has("no-auto-lora")
    }

    /// The adapters for one prompt, each with its file: flags, then the prompt's tags (a tag overrides a flag
    /// for the same file), then adapters whose trigger phrase the prompt contains and nothing names.
    func requests(for prompt: String) throws -> [(request: AdapterRequest, file: String)] {
        let tags = try AdapterRequest.extractTags(from: prompt)
        var chosen: [(request: AdapterRequest, file: String)] = []
        for request in flags + tags.requests {
            let file = try folder.locate(request.name)
            chosen.removeAll { $0.file == file }
            chosen.append((request, file))
        }
        guard automatic else { return chosen }
        let explicit = chosen.map { AdapterRequest(name: $0.file) } + chosen.map(\.request)
        return chosen + folder.triggered(by: tags.prompt, excluding: explicit).map { ($0, $0.name) }
    }
}

/// The adapters loaded into one model for a whole `generate` run.
final class AdapterSession {
    /// Every adapter a prompt of the run names, loaded at weight 0 (requests carry their own weights).
    let set: AdapterSet
    /// File path → (adapter name, A1111 short hash).
    private var loaded: [String: (name: String, hash: String)] = [:]

    init(model: StableDiffusionModel) {
        set = AdapterSet(unet: model.unet, textEncoder: model.textEncoder)
    }

    /// Loads what `requests` need (once per file), prints one line per adapter in use, and returns the
    /// batch request: `parameters` with the adapters recorded (a `<lora:name:w>` tag appended to the prompt
    /// for each adapter the prompt does not name, so the PNG re-renders exactly, and their hashes for
    /// `Lora hashes`) and the adapters' weights for its images (every other loaded adapter is off for them).
    func request(_ requests: [(request: AdapterRequest, file: String)], for parameters: GenerationParameters) throws -> BatchRequest {
        var p = parameters
        p.adapters = []
        for (_, file) in requests where loaded[file] == nil {
            let name = ((file as NSString).lastPathComponent as NSString).deletingPathExtension
            guard !loaded.values.contains(where: { $0.name == name }) else {
                throw CommandLineError.failure("two adapters are named \(name) (\(file) and another folder); rename one")
            }
            let accounting = try set.load(LoRAFile(contentsOf: file), name: name, unetWeight: 0, textEncoderWeight: 0)
            printError("generate: " + accounting.report.split(separator: "\n").joined(separator: "; "))
            loaded[file] = (name, try LoRAHash.shortHash(ofFile: file))
        }
        let active = Dictionary(requests.map { ($0.file, $0.request) }) { $1 }
        var weights: [String: AdapterWeights] = [:]
        for (file, entry) in loaded.sorted(by: { $0.key < $1.key }) {
            guard let request = active[file] else { continue }
            weights[entry.name] = AdapterWeights(unet: request.unetWeight, textEncoder: request.textEncoderWeight)
            var shown = request
            shown.name = file
            printError("generate: " + shown.usageLine)
            if request.origin != .prompt {
                let weights = request.unetWeight == request.textEncoderWeight ? "\(request.unetWeight)"
                    : "unet=\(request.unetWeight),te=\(request.textEncoderWeight)"
                p.prompt += " <lora:\(entry.name):\(weights)>"
            }
            p.adapters.append(AdapterReference(name: entry.name, weight: Double(request.unetWeight), hash: entry.hash))
        }
        return BatchRequest(parameters: p, adapterWeights: weights)
    }
}
