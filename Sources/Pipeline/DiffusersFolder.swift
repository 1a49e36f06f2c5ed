// DiffusersFolder: the on-disk layout of a diffusers pipeline folder (what `save_pretrained` writes).
//
//     model_index.json                        component name → [library, class] (null for absent ones)
//     scheduler/scheduler_config.json
//     text_encoder/config.json + model.safetensors
//     tokenizer/vocab.json + merges.txt (+ tokenizer_config.json, special_tokens_map.json), or only
//               tokenizer.json (what transformers 5 saves)
//     text_encoder_2/, tokenizer_2/           SDXL's second text encoder (CLIPTextModelWithProjection) and tokenizer
//     unet/config.json + diffusion_pytorch_model.safetensors
//     vae/config.json + diffusion_pytorch_model.safetensors   (absent: a pixel-space model)
//
// Weights may also be the `.fp16.safetensors` variants. Pickled weights (`.bin`, `.ckpt`, `.pt`, `.pth`)
// are refused: unpickling runs arbitrary code. Only this file knows the layout: readers go through
// `DiffusersFolder`, writers through `DiffusersFolder.Writer` (below).

import CLIPText
import Foundation

/// Errors of folder loading, requests and the `parameters` text; each names the file or value at fault.
public enum PipelineError: Error, CustomStringConvertible {
    /// The pipeline folder itself does not exist or is not a folder.
    case missingFolder(path: String)
    /// A file a component needs is absent; names the component folder and the file.
    case missingComponent(component: String, folder: String, file: String)
    /// A component's weights exist only as a pickle.
    case pickleRefused(path: String)
    /// A file exists but cannot be used.
    case invalidFile(path: String, reason: String)
    /// Loading a component failed; `underlying` keeps the key path and shapes of strict loading.
    case componentLoad(component: String, path: String, underlying: Error)
    /// A generation request that cannot be run (sizes, steps, …).
    case invalidRequest(String)
    /// A `parameters` text that cannot be parsed.
    case invalidParameters(String)

    public var description: String {
        switch self {
        case .missingFolder(let path):
            return "pipeline folder \(path) does not exist or is not a folder"
        case .missingComponent(let component, let folder, let file):
            return "pipeline folder \(folder): component \(component) is missing \(file)"
        case .pickleRefused(let path):
            return "\(path): pickled weights are refused (loading a pickle can run arbitrary code); "
                + "convert them to .safetensors"
        case .invalidFile(let path, let reason):
            return "\(path): \(reason)"
        case .componentLoad(let component, let path, let underlying):
            return "cannot load \(component) from \(path): \(underlying)"
        case .invalidRequest(let message):
            return "invalid request: \(message)"
        case .invalidParameters(let message):
            return "invalid parameters text: \(message)"
        }
    }
}

/// A diffusers pipeline folder: resolves component files and refuses what cannot be loaded safely.
public struct DiffusersFolder: Sendable {
    /// The folder.
    public let url: URL
    /// `model_index.json`'s components: name → (library, class), nil for components set to null.
    public let components: [String: (library: String, className: String)?]
    /// `model_index.json`'s bytes, read once (its other entries are read from them on request).
    private let index: Data

    /// Weight file names tried in each component folder, in order of preference.
    static let weightNames = ["diffusion_pytorch_model.safetensors", "model.safetensors",
                              "diffusion_pytorch_model.fp16.safetensors", "model.fp16.safetensors"]
    static let pickleExtensions = ["bin", "ckpt", "pt", "pth", "pkl"]

    /// Opens `path`; `model_index.json` is required.
    public init(path: String) throws {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), isFolder.boolValue else {
            throw PipelineError.missingFolder(path: path)
        }
        url = URL(fileURLWithPath: path, isDirectory: true).standardizedFileURL
        let indexURL = url.appendingPathComponent("model_index.json")
        guard FileManager.default.fileExists(atPath: indexURL.path) else {
            throw PipelineError.missingComponent(component: "pipeline", folder: url.path, file: "model_index.json")
        }
        do {
            index = try Data(contentsOf: indexURL)
        } catch {
            throw PipelineError.invalidFile(path: indexURL.path, reason: "not valid JSON (\(error.localizedDescription))")
        }
        components = try Self.readIndex(index, path: indexURL.path)
    }

    /// Where `model_index.json` is.
    var indexURL: URL { url.appendingPathComponent("model_index.json") }

    /// The folder's last path component (A1111's `Model:` field).
    public var name: String { url.lastPathComponent }

    /// Whether `model_index.json` names the component with a class (not null, not absent).
    public func names(_ component: String) -> Bool {
        guard let entry = components[component] else { return false }
        return entry != nil
    }

    /// `<component>/<file>`, which must exist.
    public func file(_ component: String, _ file: String) throws -> URL {
        let u = url.appendingPathComponent(component).appendingPathComponent(file)
        guard FileManager.default.fileExists(atPath: u.path) else {
            throw PipelineError.missingComponent(component: component, folder: url.path, file: "\(component)/\(file)")
        }
        return u
    }

    /// The component folder, which must exist.
    public func folder(_ component: String) throws -> URL {
        let u = url.appendingPathComponent(component, isDirectory: true)
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: u.path, isDirectory: &isFolder), isFolder.boolValue else {
            throw PipelineError.missingComponent(component: component, folder: url.path, file: "\(component)/")
        }
        return u
    }

    /// The component's safetensors weights: full precision first, then the `.fp16` variant. A folder
    /// with only pickled weights is refused; one with none names the file it expected.
    public func weights(_ component: String) throws -> URL {
        try Self.componentWeights(in: try folder(component)) {
            PipelineError.missingComponent(component: component, folder: url.path, file: "\(component)/\(Self.weightsFileName(component))")
        }
    }

    /// The weight file of the component folder `dir` (the first of `weightNames` present); pickled-only or sharded
    /// weights are refused; `missing` is the error when there are none.
    static func componentWeights(in dir: URL, missing: () -> PipelineError) throws -> URL {
        for name in weightNames {
            let u = dir.appendingPathComponent(name)
            if FileManager.default.fileExists(atPath: u.path) { return u }
        }
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        if let pickle = entries.sorted().first(where: { pickleExtensions.contains(($0 as NSString).pathExtension) }) {
            throw PipelineError.pickleRefused(path: dir.appendingPathComponent(pickle).path)
        }
        if let index = entries.first(where: { $0.hasSuffix(".safetensors.index.json") }) {
            throw PipelineError.invalidFile(path: dir.appendingPathComponent(index).path,
                                            reason: "sharded weights are not supported; merge the shards into one file")
        }
        throw missing()
    }

    /// The component's weights, or nil when it has none (no folder or no weight file); pickles are still refused.
    public func weightsIfPresent(_ component: String) throws -> URL? {
        do {
            return try weights(component)
        } catch PipelineError.missingComponent {
            return nil
        }
    }

    /// Whether the pipeline runs on VAE latents: `model_index.json` names a `vae` (else it is pixel-space).
    public var isLatent: Bool { names("vae") }

    /// The scheduler configuration file (`scheduler/scheduler_config.json`), nil when absent.
    public var schedulerConfig: URL? {
        let u = url.appendingPathComponent("scheduler").appendingPathComponent(Self.configFileName("scheduler"))
        return FileManager.default.fileExists(atPath: u.path) ? u : nil
    }

    /// Whether `path` is a folder with a `model_index.json` (what `init(path:)` opens).
    public static func exists(at path: String) -> Bool {
        FileManager.default.fileExists(atPath: URL(fileURLWithPath: path).appendingPathComponent("model_index.json").path)
    }

    /// The weight file `save_pretrained` writes in a component folder (full precision).
    public static func weightsFileName(_ component: String) -> String {
        component.hasPrefix("text_encoder") ? "model.safetensors" : "diffusion_pytorch_model.safetensors"
    }

    /// The configuration file `save_pretrained` writes in a component folder.
    public static func configFileName(_ component: String) -> String {
        component == "scheduler" ? "scheduler_config.json" : "config.json"
    }

    /// A boolean entry of `model_index.json` (e.g. SDXL's `force_zeros_for_empty_prompt`); nil when absent.
    public func flag(_ key: String) -> Bool? {
        let object = try? JSONSerialization.jsonObject(with: index)
        return (object as? [String: Any])?[key] as? Bool
    }

    /// `model_index.json`'s `_guidance_scale`: the classifier-free guidance scale the model's makers recommend,
    /// used where a command is given none (nil when absent). diffusers leaves keys that start with `_` out of a
    /// pipeline's arguments, so the folder still loads there unchanged. Throws unless it is a number in [0, 100]
    /// (or null: none).
    public func recommendedGuidance() throws -> Double? {
        let reason = "\(Self.guidanceKey) must be a number in [0, 100]"
        // JSONDecoder reads a number as Double and refuses true, "4" and the like (JSONSerialization's NSNumber would
        // pass a boolean off as 0 or 1).
        guard let value = try? JSONDecoder().decode(GuidanceEntry.self, from: index) else {
            throw PipelineError.invalidFile(path: indexURL.path, reason: reason)
        }
        if let g = value.value, !(0...100).contains(g) { throw PipelineError.invalidFile(path: indexURL.path, reason: reason + ", got \(g)") }
        return value.value
    }

    /// The `model_index.json` key of `recommendedGuidance()`.
    public static let guidanceKey = GuidanceEntry.CodingKeys.value.rawValue

    private struct GuidanceEntry: Decodable {
        let value: Double?
        enum CodingKeys: String, CodingKey { case value = "_guidance_scale" }
    }

    /// The CLIP tokenizer of `tokenizer/` (SDXL's second: `tokenizer_2/`): from `vocab.json` + `merges.txt`,
    /// or else from the `model` (BPE vocabulary and merges) of `tokenizer.json`.
    public func tokenizer(_ component: String = "tokenizer") throws -> BPETokenizer {
        let dir = try folder(component)
        let fm = FileManager.default
        if fm.fileExists(atPath: dir.appendingPathComponent("vocab.json").path)
            || !fm.fileExists(atPath: dir.appendingPathComponent("tokenizer.json").path) {
            _ = try file(component, "vocab.json")
            _ = try file(component, "merges.txt")
            return try BPETokenizer(directory: dir)
        }
        let json = dir.appendingPathComponent("tokenizer.json")
        let object = try? JSONSerialization.jsonObject(with: Data(contentsOf: json))
        guard let model = (object as? [String: Any])?["model"] as? [String: Any], model["type"] as? String == "BPE",
              let vocabulary = model["vocab"] as? [String: Int], let rawMerges = model["merges"] as? [Any] else {
            throw PipelineError.invalidFile(path: json.path, reason: "no BPE model with \"vocab\" and \"merges\"")
        }
        let merges: [(String, String)] = try rawMerges.map { entry in
            if let pair = entry as? [String], pair.count == 2 { return (pair[0], pair[1]) }
            if let text = entry as? String {
                let parts = text.split(separator: " ", maxSplits: 1)
                if parts.count == 2 { return (String(parts[0]), String(parts[1])) }
            }
            throw PipelineError.invalidFile(path: json.path, reason: "malformed merge \(entry)")
        }
        return try BPETokenizer(vocabulary: vocabulary, merges: merges,
                                configuration: TokenizerConfiguration(directory: dir))
    }

    private static func readIndex(_ data: Data, path: String) throws -> [String: (library: String, className: String)?] {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw PipelineError.invalidFile(path: path, reason: "not valid JSON (\(error.localizedDescription))")
        }
        guard let dict = object as? [String: Any] else {
            throw PipelineError.invalidFile(path: path, reason: "top level is not a JSON object")
        }
        var out: [String: (library: String, className: String)?] = [:]
        for (key, value) in dict where !key.hasPrefix("_") {
            guard let pair = value as? [Any], pair.count == 2 else { continue }
            if let library = pair[0] as? String, let className = pair[1] as? String {
                out[key] = (library, className)
            } else {
                out[key] = .some(nil)
            }
        }
        return out
    }
}

extension DiffusersFolder {
    /// Writes a pipeline folder in the layout above: component folders, their files, `model_index.json` last.
    public struct Writer {
        public let url: URL

        /// Creates `path` and the folders of `components` (existing files are replaced as they are written).
        public init(path: String, components: [String]) throws {
            url = URL(fileURLWithPath: path, isDirectory: true)
            for c in components {
                try FileManager.default.createDirectory(at: url.appendingPathComponent(c), withIntermediateDirectories: true)
            }
        }

        /// The component's folder.
        public func folder(_ component: String) -> URL { url.appendingPathComponent(component) }
        /// The component's configuration file (`config.json`, `scheduler_config.json`).
        public func config(_ component: String) -> URL {
            folder(component).appendingPathComponent(DiffusersFolder.configFileName(component))
        }
        /// The component's full-precision weight file name in place (`model.safetensors`, `diffusion_pytorch_model.safetensors`).
        public func weights(_ component: String) -> URL {
            folder(component).appendingPathComponent(DiffusersFolder.weightsFileName(component))
        }

        /// Writes `model_index.json` (atomically): `_class_name`, `_diffusers_version`, `fields` as they are
        /// (JSON text) and each component's `[library, class]` (`[null, null]` for nil), keys sorted.
        public func writeIndex(className: String, diffusersVersion: String, components: [String: (library: String, className: String)?],
                               fields: [String: String] = [:]) throws {
            var entries = fields
            entries["_class_name"] = "\"\(className)\""
            entries["_diffusers_version"] = "\"\(diffusersVersion)\""
            for (name, entry) in components {
                entries[name] = entry.map { "[\"\($0.library)\", \"\($0.className)\"]" } ?? "[null, null]"
            }
            let body = entries.sorted { $0.key < $1.key }.map { "  \"\($0.key)\": \($0.value)" }.joined(separator: ",\n")
            try Data("{\n\(body)\n}\n".utf8).write(to: url.appendingPathComponent("model_index.json"), options: .atomic)
        }
    }
}
