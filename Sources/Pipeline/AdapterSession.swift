// AdapterSession: adapter files loaded into one model once, for many requests. Each request names its
// adapters (`AdapterRequest`s with their files); the session loads what is new at weight 0, and returns the
// `BatchRequest` whose `adapterWeights` switch them on for that request's images only, with the PNG record
// (`<lora:name:w>` tags appended to the prompt for adapters the prompt does not name, `Lora hashes`).
import Adapters
import Foundation

/// The adapters loaded into one model for a whole run of many requests (`generate`): each file once.
public final class AdapterSession {
    /// Every adapter a prompt of the run names, loaded at weight 0 (requests carry their own weights).
    public let set: AdapterSet
    /// File path → (adapter name, A1111 short hash).
    private var loaded: [String: (name: String, hash: String)] = [:]
    /// Trigger-word adapters left out because they do not fit the model.
    private var skipped: Set<String> = []
    /// Receives one line per adapter loaded (its key accounting) and per adapter in use.
    private let log: (String) -> Void

    /// An adapter's name: its file name without extension, or for diffusers' fixed file name
    /// (`pytorch_lora_weights.safetensors`, one per output folder) the name of its folder.
    public static func name(ofFile file: String) -> String {
        let url = URL(fileURLWithPath: file)
        let stem = url.deletingPathExtension().lastPathComponent
        guard stem == "pytorch_lora_weights" || stem == "pytorch_lora_weights.fp16" else { return stem }
        let folder = url.deletingLastPathComponent().standardizedFileURL.lastPathComponent
        return folder.isEmpty || folder == "/" ? stem : folder
    }

    public init(model: StableDiffusionModel, log: @escaping (String) -> Void = { _ in }) {
        set = AdapterSet(unet: model.unet, textEncoder: model.textEncoder, textEncoder2: model.textEncoder2,
                         unetAliases: model.unetLDMModuleNames)
        self.log = log
    }

    /// Loads what `requests` need (once per file), logs one line per adapter in use, and returns the
    /// batch request: `parameters` with the adapters recorded (a `<lora:name:w>` tag appended to the prompt
    /// for each adapter the prompt does not name, so the PNG re-renders exactly, and their hashes for
    /// `Lora hashes`) and the adapters' weights for its images (every other loaded adapter is off for them).
    public func request(_ requests: [(request: AdapterRequest, file: String)], for parameters: GenerationParameters) throws -> BatchRequest {
        var p = parameters
        p.adapters = []
        for (request, file) in requests where loaded[file] == nil && !skipped.contains(file) {
            let name = request.label ?? Self.name(ofFile: file)
            guard !loaded.values.contains(where: { $0.name == name }) else {
                throw PipelineError.invalidRequest("two adapters are named \(name) (\(file) and another); "
                    + "name one with --lora NAME=FILE")
            }
            let accounting: KeyAccounting
            do {
                accounting = try set.load(LoRAFile(contentsOf: file), name: name, unetWeight: 0, textEncoderWeight: 0)
            } catch where request.origin == .trigger {
                // The prompt did not ask for this adapter by name: one that does not fit this model is left out.
                log("skipping adapter \((file as NSString).lastPathComponent) (trigger \"\(request.trigger ?? "")\"): "
                    + "it does not fit this model (\(String(describing: error).split(separator: "\n").first ?? ""))")
                skipped.insert(file)
                continue
            }
            log(accounting.report.split(separator: "\n").joined(separator: "; "))
            loaded[file] = (name, try LoRAHash.shortHash(ofFile: file))
        }
        let active = Dictionary(requests.map { ($0.file, $0.request) }) { $1 }
        var weights: [String: AdapterWeights] = [:]
        for (file, entry) in loaded.sorted(by: { $0.key < $1.key }) {
            guard let request = active[file] else { continue }
            weights[entry.name] = AdapterWeights(unet: request.unetWeight, textEncoder: request.textEncoderWeight)
            var shown = request
            shown.name = file
            log(shown.usageLine)
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
