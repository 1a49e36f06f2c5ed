// `generate`: text to PNG images with a diffusers pipeline folder.

import Adapters
import DiffusionModels
import Foundation
import PNGImage
import Pipeline
import Schedulers
import TensorCore

public enum GenerateCommand {
    public static let help = """
    usage: generate [options] "PROMPT"
           generate [options] --prompts FILE
           generate [options] --from-png IMAGE.png

    Generates PNG images from text prompts with a Stable-Diffusion-style model: a diffusers folder or one
    original-layout .safetensors file. Every PNG carries an A1111-style `parameters` text chunk; --from-png
    re-renders from it.

    options:
    \(ModelOptions.help)
      --negative TEXT     negative prompt (default: none = unconditional)
      --steps N           sampler steps (default 20)
      --cfg G             classifier-free guidance scale (default: the model folder's recommended scale, model_index.json
                          "_guidance_scale" — 4 for the embedded model — else 7.5; ≤ 1 disables guidance)
      --guidance-rescale φ  diffusers' guidance_rescale (A1111's "CFG Rescale phi"), 0…1 (default 0): keeps the
                          guided prediction at the spread of the prompt's own, against the burnt, over-saturated
                          pictures of high CFG (0.7 is the paper's choice)
      --sampler NAME      \(SamplerKind.allCases.map(\.rawValue).joined(separator: ", ")) (default dpm++2m);
                          A1111's names as its PNGs write them work too ("Euler a", "DPM++ 2M Karras")
      --karras            Karras sigma spacing (euler, euler_a, heun, lms, dpm++2m, dpm++2m_sde, unipc)
      --seed N            random seed (default or -1: random, printed)
      --rng torch|native  torch: the same noise as torch.Generator("cpu").manual_seed(seed) in diffusers;
                          native: the project's Philox generator (default)
      --width W, --height H   image size (default: the model's; multiples of 8 for latent models)
      --vae-tiling        decode the VAE in overlapping tiles of its sample_size, blended (diffusers' enable_tiling):
                          bounded memory for large pictures (default: only above 1024x1024 pixels)
      --taesd DIR         decode with the tiny autoencoder TAESD (a diffusers AutoencoderTiny folder): drafts in a
                          fraction of the VAE's time; --vae DIR takes such a folder too
      --fast              the few-step preset for LCM models and LCM-LoRAs: --sampler lcm --steps 4 --cfg 1 (no
                          unconditional pass); decodes with the model folder's taesd/ (an AutoencoderTiny folder)
                          when it has one, or with --taesd DIR
      --preview taesd     while denoising, write OUT/preview.png (the batch's first image) decoded with TAESD
                          (--taesd/--vae DIR, else the model folder's taesd/); the final picture keeps the VAE
                          unless --taesd is given
      --preview-every N   refresh the preview every N steps (default 2) and after the last
      --clip-skip N       skip the last N text-encoder layers (diffusers' clip_skip; A1111's "Clip skip" − 1)
    \(SizeConditioningOptions.help)
      --num-images N      images per prompt, drawn together from one seed (default 1)
      --prompts FILE      one prompt per line; blank lines and lines starting with # are skipped
      --batch-size N      images denoised together (default 4): consecutive prompts run in one batch, each
                          with its own seed and adapters (<lora:…> tags); every image is the one it would be
                          alone. A prompt's --num-images stay together even beyond N
      --out DIR           output folder (default outputs/); files are never overwritten. --out FILE.png names
                          the image (FILE-2.png, … for more)
      --from-png FILE     re-render the image whose parameters chunk FILE carries (same pixels); other
                          options given explicitly override the chunk's values
      --init-image FILE|DIR  image to image: start from this picture, PNG, JPEG or WebP (a folder: each of its
                          pictures, one output each), upright by its EXIF orientation, resized to --width/--height
                          (default: its own size, rounded down to a multiple of 8)
      --strength S        img2img denoising strength in (0, 1]: the share of the steps run (default 0.8)
      --resize stretch|crop   fit the init image by stretching (default) or by scaling and centre-cropping
      --lora FILE[:W]     apply a LoRA adapter at weight W (default 1); FILE:unet=0.8,te=0.3 weights the UNet
                          and text encoder apart; repeatable. A file name is also looked up in --lora-dir.
                          In the prompt, <lora:name:W> does the same for one prompt. An adapter is named after
                          its file (diffusers' pytorch_lora_weights.safetensors: after its folder); NAME=FILE[:W]
                          names it yourself.
      --lora-dir DIR      adapter folder for names and trigger words (default outputs/adapters)
      --no-auto-lora      do not apply adapters whose trigger phrase (modelspec.trigger_phrase) the prompt contains
      --shard I/N         render only prompts I, I+N, I+2N, … (I from 0) of the prompts, each PNG as in one run of
                          them all (needs --seed): N machines share a prompt file with no coordinator
      --grid FILE         also write all images of the run into one grid PNG, in prompt order (its parameters
                          chunk lists every image's parameters)
      --grid-columns N    images per grid row (default: --num-images when above 1, else the prompt count up to 8)
      --save-quantized DIR  with --quantize nf4|fp4: write the model as a diffusers folder with a bitsandbytes 4-bit
                          UNet (the format diffusers + bitsandbytes save) and exit; --pipeline DIR loads it back
      --json              print a JSON summary on stdout
      --verbose           also print which CPU kernels run (STYLEDIFFUSION_ISA=avx512|avx2|sse2|neon forces one)
      --help              this text

    stable-diffusion.cpp's spellings work as well: -p PROMPT, -n/--negative-prompt, -s SEED, -W, -H, -o,
    --cfg-scale (also --guidance), --sampling-method, --batch-count (= --num-images).

    examples:
      generate "a photo of sks dog"
      generate --lora outputs/adapters/ink.safetensors:0.8 "a house, <lora:sks:0.6> sks dog"
      generate -m v1-5-pruned-emaonly.safetensors --vae vae-ft-mse-840000-ema-pruned.safetensors "a photo of a dog"
      generate --pipeline pipelines/toy --sampler euler_a --steps 30 --seed 42 "a red car on the beach"
      generate --rng torch --seed 1234 --cfg 7.5 --sampler dpm++2m --karras "a cat in the snow"
      generate --prompts prompts/animals.txt --num-images 2 --out outputs/animals
      generate --from-png outputs/20250101-120000-42-a-photo-of-sks-dog.png
      generate --init-image photo.png --strength 0.6 "a photo of a dog, pixelart style"
    """

    static let options: Set<String> = ModelOptions.names.union(["pipeline", "negative", "steps", "cfg", "sampler", "seed", "rng", "width",
                                       "height", "clip-skip", "num-images", "prompts", "out", "from-png", "lora", "lora-dir",
                                       "batch-size", "grid", "grid-columns", "init-image", "strength", "resize", "taesd", "preview",
                                       "preview-every", "save-quantized", "guidance-rescale"]).union(SizeConditioningOptions.names)
    static let flagNames: Set<String> = ["karras", "json", "help", "no-auto-lora", "verbose", "vae-tiling", "fast", "quantize-convs"]
    /// stable-diffusion.cpp's spellings: `-p PROMPT` (an option there) and its short and long option names.
    static let compatibilityOptions: Set<String> = ["prompt"]
    static let shortNames = ["-p": "prompt", "-n": "negative", "-s": "seed", "-W": "width", "-H": "height", "-o": "out",
                             "-m": "pipeline"]
    /// `--shard I/N`: lines I, I+N, … of the prompts (I from 0), for one of N machines.
    static let shardOption: Set<String> = ["shard"]
    static let aliases = ["negative-prompt": "negative", "cfg-scale": "cfg", "guidance": "cfg", "guidance-scale": "cfg",
                          "sampling-method": "sampler", "output": "out", "batch-count": "num-images", "model": "pipeline",
                          "cfg-rescale": "guidance-rescale"]

    /// Runs `generate` with `arguments` (without the program name); returns the exit code.
    public static func main(_ arguments: [String]) -> Int32 {
        runCommand("generate") { try run(arguments) }
    }

    static func run(_ arguments: [String]) throws {
        let args = try ParsedArguments(arguments, options: options.union(compatibilityOptions).union(shardOption), flagNames: flagNames,
                                       shortNames: shortNames, aliases: aliases)
        if args.has("help") {
            print(help)
            return
        }
        if args.has("verbose") {
            printError("generate: \(Kernels.summary), CPU \(Kernels.cpuName.isEmpty ? "unnamed" : Kernels.cpuName)")
        }
        if let destination = args.string("save-quantized") {     // QuantizeCommand.swift: save the 4-bit model and exit
            return try saveQuantized(args, to: destination)
        }
        var jobs = try InitImages.apply(try requests(args), args)
        guard !jobs.isEmpty else { return }     // a --shard beyond the prompts
        let batchSize = try args.int("batch-size", in: 1...64) ?? 4
        let gridPath = args.string("grid")
        let gridColumns = try args.int("grid-columns", in: 1...4096)
        if gridPath == nil, gridColumns != nil { throw CommandLineError.usage("--grid-columns needs --grid FILE") }
        if let gridPath {
            let folder = URL(fileURLWithPath: gridPath).deletingLastPathComponent().path
            guard FileManager.default.fileExists(atPath: folder.isEmpty ? "." : folder) else {
                throw CommandLineError.failure("--grid \(gridPath): folder \(folder) does not exist")
            }
        }
        let adapterOptions = try AdapterOptions(args)
        let adapterRequests = try jobs.map { try adapterOptions.requests(for: $0.parameters.prompt) }
        let pipelinePath = try pipelineFolder(args.string("pipeline"))
        // `--out FILE.png` (sd.cpp's -o) names the image: FILE.png, then FILE-2.png, … for more images.
        let outOption = args.string("out") ?? "outputs"
        let namedFile = outOption.lowercased().hasSuffix(".png") ? URL(fileURLWithPath: outOption) : nil
        let out = try OutputFolder(path: namedFile?.deletingLastPathComponent().path ?? outOption)
        // `--vae DIR` naming a diffusers AutoencoderTiny folder is `--taesd DIR`; `--fast` takes the model folder's
        // `taesd/` when it has one and no tiny autoencoder is given.
        var modelOptions = try ModelOptions(args)
        var taesdPath = args.string("taesd")
        if let vae = modelOptions.vae, ModelSource.isTinyAutoencoderFolder(vae) {
            guard taesdPath == nil else { throw CommandLineError.usage("--vae \(vae) is a tiny autoencoder: give it or --taesd, not both") }
            (taesdPath, modelOptions.vae) = (vae, nil)
        }
        if taesdPath == nil, args.has("fast") { taesdPath = ModelSource.bundledTinyAutoencoderFolder(modelPath: pipelinePath) }
        let model = try modelOptions.load(path: pipelinePath, program: "generate")
        if let g = model.recommendedGuidance, args.string("cfg") == nil, !args.has("fast"), args.string("from-png") == nil {
            for i in jobs.indices { jobs[i].parameters.guidanceScale = g }
            printError("generate: CFG \(g), the scale \(model.name) recommends (--cfg G for another)")
        }
        let adapters = AdapterSession(model: model) { printError("generate: " + $0) }
        var pipeline = TextToImage(model: model, adapters: adapters.set)
        if args.has("vae-tiling") { pipeline.vaeTiling = .on }
        if let dir = taesdPath { pipeline.tinyAutoencoder = try ModelSource.loadTinyAutoencoder(dir) }
        let preview = try Preview(args, model: model, tiny: pipeline.tinyAutoencoder,
                                  bundled: ModelSource.bundledTinyAutoencoderFolder(modelPath: pipelinePath),
                                  file: out.url.appendingPathComponent("preview.png").path)
        let resolved = try zip(jobs, adapterRequests).map { (try pipeline.resolve($0.parameters, initImage: $0.initImage), $0.keep, $1) }
        for job in jobs {
            if let expected = job.modelHash, let actual = try model.modelHash(), expected != actual {
                printError("generate: warning: the PNG was made with model hash \(expected), this model's is \(actual); "
                    + "the pixels will differ")
            }
        }
        for line in try promptLengthWarnings(jobs.map(\.parameters), model: model) { printError("generate: warning: " + line) }
        var written: [[String: Any]] = []
        var gridImages: [Image] = [], gridText: [String] = []
        let clock = Date()
        let batch = try resolved.enumerated().map { index, job in
            var request = try adapters.request(job.2, for: job.0)
            request.initImage = jobs[index].initImage
            for line in adapterHashWarnings(recorded: jobs[index], used: request.parameters) { printError("generate: warning: " + line) }
            printError("generate: seed \(request.parameters.seed), prompt \(index + 1)/\(resolved.count): \(request.parameters.prompt)")
            return request
        }
        for range in batches(batch.map(\.parameters), size: batchSize) {
            let label = range.count == 1 ? "prompt \(range.lowerBound + 1)/\(batch.count)"
                : "prompts \(range.lowerBound + 1)-\(range.upperBound)/\(batch.count)"
            let reporter = ProgressReporter(label: label)
            let results = try pipeline.generate(batch: Array(batch[range])) {
                reporter.update(step: $0.step, total: $0.total, elapsed: $0.elapsed)
                preview?.update($0)
            }
            for (index, images) in zip(range, results) {
                let keep = resolved[index].1
                for (position, generated) in images.enumerated() where keep == nil || keep == position {
                    let p = generated.info.parameters
                    let bytes = try PNG.encode(generated.image, text: [PNGTextChunk(keyword: ParametersText.keyword,
                                                                                    text: generated.info.text)])
                    let path = try out.writeNew(bytes, baseName: namedFile?.deletingPathExtension().lastPathComponent
                        ?? OutputFolder.baseName(date: Date(), seed: p.seed, prompt: try AdapterRequest.extractTags(from: p.prompt).prompt))
                    printError("generate: wrote \(path)")
                    written.append(summary(path: path, generated.info))
                    if gridPath != nil {
                        gridImages.append(generated.image)
                        gridText.append(generated.info.text)
                    }
                }
            }
        }
        if let gridPath, !gridImages.isEmpty {
            let columns = gridColumns ?? (jobs[0].parameters.numImages > 1 ? jobs[0].parameters.numImages : min(gridImages.count, 8))
            let grid = try Image.grid(gridImages, columns: columns, gap: 2)
            try PNG.write(grid, to: gridPath, text: [PNGTextChunk(keyword: "grid", text: gridText.joined(separator: "\n\n"))])
            printError("generate: wrote \(gridPath) (\(gridImages.count) images, \(columns) columns)")
        }
        if args.has("json") {
            let object: [String: Any] = ["model": model.name, "model_hash": try model.modelHash() ?? "",
                                         "seconds": Date().timeIntervalSince(clock), "images": written,
                                         "kernels": Kernels.active.name]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted])
            print(String(decoding: data, as: UTF8.self))
        }
    }

    /// Consecutive requests that share a denoising loop, at most `size` images a batch (a request with more
    /// images runs alone: its images are drawn together from one seed).
    static func batches(_ requests: [GenerationParameters], size: Int) -> [Range<Int>] {
        var out: [Range<Int>] = []
        var start = 0, images = 0
        for (i, p) in requests.enumerated() {
            if i > start, !(p.sharesDenoisingLoop(with: requests[start]) && images + p.numImages <= size) {
                out.append(start..<i)
                (start, images) = (i, 0)
            }
            images += p.numImages
        }
        if !requests.isEmpty { out.append(start..<requests.count) }
        return out
    }

    /// A job: the parameters and, for --from-png, the batch position to keep and the model hash it names.
    struct Job {
        var parameters: GenerationParameters
        var keep: Int?
        var modelHash: String?
        var initImage: Image? = nil
    }

    /// The runs the command line asks for, checked before any model is loaded.
    static func requests(_ args: ParsedArguments) throws -> [Job] {
        if let png = args.string("from-png") {
            guard args.positionals.isEmpty, !args.has("prompts"), !args.has("prompt") else {
                throw CommandLineError.usage("--from-png takes no prompt and no --prompts")
            }
            let info = try parameters(fromPNG: png)
            let p = try overridden(info.parameters, args, defaultSeed: info.parameters.seed)
            guard info.batchPosition < p.numImages else {
                throw CommandLineError.failure("\(png) is image \(info.batchPosition + 1) of its batch; "
                    + "--num-images \(p.numImages) does not reach it")
            }
            return [Job(parameters: p, keep: info.batchPosition, modelHash: info.modelHash)]
        }
        var prompts = args.positionals + (args.values["prompt"] ?? [])
        guard prompts.count <= 1 else {
            throw CommandLineError.usage("one prompt per run, got \(prompts.count) (quote the prompt, or use --prompts)")
        }
        if let file = args.string("prompts") {
            guard prompts.isEmpty else { throw CommandLineError.usage("give either a prompt or --prompts, not both") }
            prompts = try readPrompts(file)
        }
        guard !prompts.isEmpty else { throw CommandLineError.usage("no prompt given (see generate --help)") }
        if let shard = args.string("shard") {
            let (index, count) = try parseShard(shard)
            guard try seedOption(args) != nil else {
                throw CommandLineError.usage("--shard needs --seed N, so that every shard draws the seeds of one run")
            }
            prompts = prompts.enumerated().filter { $0.offset % count == index }.map(\.element)
            guard !prompts.isEmpty else {
                printError("generate: shard \(shard): no prompts (the file has fewer than \(index + 1))")
                return []
            }
        }
        let seed = try seedOption(args) ?? UInt64.random(in: 0...UInt64(UInt32.max))
        return try prompts.map { Job(parameters: try overridden(GenerationParameters(prompt: $0), args, defaultSeed: seed), keep: nil) }
    }

    /// `I/N` with 0 ≤ I < N.
    static func parseShard(_ text: String) throws -> (index: Int, count: Int) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]), n >= 1, (0..<n).contains(i) else {
            throw CommandLineError.usage("--shard expects I/N with 0 ≤ I < N (e.g. 0/4), got \"\(text)\"")
        }
        return (i, n)
    }

    /// `--seed N`; nil when not given or -1 (random, as in stable-diffusion.cpp and A1111).
    static func seedOption(_ args: ParsedArguments) throws -> UInt64? {
        args.string("seed") == "-1" ? nil : try args.uint64("seed")
    }

    /// `base` with every option given on the command line applied.
    static func overridden(_ base: GenerationParameters, _ args: ParsedArguments, defaultSeed: UInt64) throws -> GenerationParameters {
        var p = base
        if args.has("fast") { (p.sampler, p.steps, p.guidanceScale) = (.lcm, 4, 1) }   // explicit options still win
        if let v = args.string("negative") { p.negativePrompt = v }
        if let v = try args.int("steps", in: 1...1000) { p.steps = v }
        if let v = try args.double("cfg") { p.guidanceScale = v }
        if let v = try args.double("guidance-rescale") {
            guard (0...1).contains(v) else { throw CommandLineError.usage("--guidance-rescale takes a number in [0, 1], got \(v)") }
            p.guidanceRescale = v
        }
        if let name = args.string("sampler") {
            // A1111 writes Karras spacing into the sampler's name ("DPM++ 2M Karras").
            let karras = name.lowercased().hasSuffix(" karras")
            guard let kind = SamplerKind(userName: karras ? String(name.dropLast(7)) : name) else {
                throw CommandLineError.usage("unknown sampler \"\(name)\" (valid: "
                    + SamplerKind.allCases.map(\.rawValue).joined(separator: ", ") + ")")
            }
            p.sampler = kind
            if karras { p.karras = true }
        }
        if args.has("karras") { p.karras = true }
        p.seed = try seedOption(args) ?? defaultSeed
        if let v = args.string("rng") {
            guard let kind = RandomSourceKind(rawValue: v) else {
                throw CommandLineError.usage("--rng must be torch or native, got \"\(v)\"")
            }
            p.rng = kind
        }
        if let v = try args.int("width", in: 1...16384) { p.width = v }
        if let v = try args.int("height", in: 1...16384) { p.height = v }
        if let v = try args.int("clip-skip", in: 0...64) { p.clipSkip = v }
        if let v = try SizeConditioningOptions.parse(args) { p.sizeConditioning = v }
        if let v = try args.int("num-images", in: 1...64) { p.numImages = v }
        return p
    }

    /// Warnings for prompts (and negative prompts) longer than the text encoder reads: the part that is cut.
    static func promptLengthWarnings(_ parameters: [GenerationParameters], model: StableDiffusionModel) throws -> [String] {
        var seen = Set<String>(), lines: [String] = []
        for p in parameters {
            for text in [try AdapterRequest.extractTags(from: p.prompt).prompt, p.negativePrompt] where seen.insert(text).inserted {
                guard let cut = model.truncatedPart(of: text) else { continue }
                lines.append("the text encoder reads \(model.promptTokenLimit) tokens of a prompt; this part of "
                    + "\"\(text.prefix(40))…\" is cut: \"\(cut)\"")
            }
        }
        return lines
    }

    /// For --from-png: adapters whose file differs from the one the PNG records (same name, another hash).
    static func adapterHashWarnings(recorded job: Job, used: GenerationParameters) -> [String] {
        guard job.keep != nil else { return [] }
        return job.parameters.adapters.compactMap { old in
            guard let was = old.hash, let now = used.adapters.first(where: { $0.name == old.name })?.hash,
                  !now.hasPrefix(was) && !was.hasPrefix(now) else { return nil }
            return "the PNG was made with adapter \(old.name) of hash \(was), the one found now has hash \(now); "
                + "the pixels will differ"
        }
    }

    /// The `parameters` chunk of a PNG file.
    static func parameters(fromPNG path: String) throws -> ParametersText {
        let decoded = try PNG.read(path: path)
        if let grid = decoded.text.first(where: { $0.keyword == "grid" }) {
            let count = grid.text.components(separatedBy: "\n\n").count
            throw CommandLineError.failure("\(path) is a grid of \(count) images (written by --grid); "
                + "re-render from one of the images' own PNGs")
        }
        guard let chunk = decoded.text.first(where: { $0.keyword == ParametersText.keyword }) else {
            throw CommandLineError.failure("\(path) has no \"parameters\" text chunk")
        }
        return try ParametersText(parsing: chunk.text)
    }

    /// Prompts of a prompts file: one per line, blank lines and `#` comments skipped.
    static func readPrompts(_ path: String) throws -> [String] {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw CommandLineError.failure("cannot read prompts file \(path) (\(inWords(error)))")
        }
        let prompts = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }
        guard !prompts.isEmpty else { throw CommandLineError.failure("prompts file \(path) has no prompts") }
        return prompts
    }

    /// The pipeline folder: the option's, or the embedded default `pipelines/toy` looked up in the
    /// working directory and beside the executable's checkout (or in `searchRoots`).
    static func pipelineFolder(_ option: String?, searchRoots: [URL]? = nil) throws -> String {
        if let option { return option }
        let executable = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
                             ?? CommandLine.arguments[0])
        let roots = searchRoots ?? [URL(fileURLWithPath: FileManager.default.currentDirectoryPath),
                                    executable.deletingLastPathComponent().appendingPathComponent("../.."),
                                    executable.deletingLastPathComponent().appendingPathComponent("../../..")]
        let candidates = roots.map { $0.appendingPathComponent("pipelines/toy").standardizedFileURL.path }
        for c in candidates where DiffusersFolder.exists(at: c) { return c }
        throw CommandLineError.failure("no --pipeline given and the default pipeline pipelines/toy does not exist "
            + "(looked in \(Array(Set(candidates)).sorted().joined(separator: ", "))); pass --pipeline DIR (a diffusers folder)")
    }

    static func summary(path: String, _ info: ParametersText) -> [String: Any] {
        let p = info.parameters
        return ["path": path, "prompt": p.prompt, "negative_prompt": p.negativePrompt, "seed": p.seed,
                "steps": p.steps, "cfg": p.guidanceScale, "guidance_rescale": p.guidanceRescale, "sampler": p.sampler.rawValue,
                "karras": p.karras ?? false,
                "rng": p.rng.rawValue, "width": p.width ?? 0, "height": p.height ?? 0, "clip_skip": p.clipSkip,
                "batch_position": info.batchPosition, "parameters": info.text]
            .merging(InitImages.summary(p)) { a, _ in a }
    }
}

/// `--preview taesd`: the batch's first image decoded with a tiny autoencoder every N steps (and after the last),
/// written over one PNG. A failed write is reported once and does not stop the run.
final class Preview {
    let decoder: AutoencoderTiny
    let every: Int
    let file: String
    private var failed = false

    init?(_ args: ParsedArguments, model: StableDiffusionModel, tiny: AutoencoderTiny?, bundled: String?, file: String) throws {
        let every = try args.int("preview-every", in: 1...10_000)
        guard let mode = args.string("preview") else {
            if every != nil { throw CommandLineError.usage("--preview-every needs --preview taesd") }
            return nil
        }
        guard mode == "taesd" else { throw CommandLineError.usage("--preview must be taesd, got \"\(mode)\"") }
        guard model.vae != nil else { throw CommandLineError.usage("--preview taesd needs a latent model (one with a VAE)") }
        if let tiny {
            decoder = tiny
        } else if let bundled {
            decoder = try ModelSource.loadTinyAutoencoder(bundled)
        } else {
            throw CommandLineError.usage("--preview taesd needs a tiny autoencoder: --taesd DIR, --vae DIR or the model folder's taesd/")
        }
        guard decoder.config.upsamplingFactor == model.spatialFactor else {
            throw CommandLineError.usage("--preview: the tiny autoencoder upsamples by \(decoder.config.upsamplingFactor), "
                + "the model's VAE by \(model.spatialFactor)")
        }
        self.every = every ?? 2
        self.file = file
    }

    func update(_ progress: StepProgress) {
        guard !failed, progress.step % every == 0 || progress.step == progress.total else { return }
        let latents = progress.latents
        let perImage = latents.count / max(latents.shape[0], 1)
        let first = latents.withUnsafeBufferPointer { src in
            Tensor(shape: [1] + Array(latents.shape.dropFirst())) { $0.baseAddress!.update(from: src.baseAddress!, count: perImage) }
        }
        do {
            try PNG.write(try Image(tensorHWC: decoder.image(fromUNetLatents: first)), to: file)
        } catch {
            failed = true
            printError("generate: warning: preview not written (\(error))")
        }
    }
}
