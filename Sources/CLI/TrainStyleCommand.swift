// `train-style IMAGES_DIR --token sks [--class dog] [--style] ...`: DreamBooth-LoRA training of a subject
// or style; writes the run folder (checkpoints, sample grids, loss curve) and the adapter file, and ends
// with the judge's fidelity report on picture-world models. `train-style --report ADAPTER` runs the report alone.
import Adapters
import Foundation
import Judge
import Pipeline
import Training

/// The command line of `train-style`, mapped onto `StyleTrainingConfig`.
public struct TrainStyleArguments {
    public var config: StyleTrainingConfig
    public var out: URL
    public var resume: URL?
    /// The fidelity report at the end of the run: nil with --no-report.
    public var report: ReportOptions?
    /// --vae, --prediction, --tokenizer (for a single-file base model).
    var modelOptions: ModelOptions
    /// With --resume: the step the run's checkpoint has reached.
    public var resumeStep: Int?
    /// --preview-dataset: write the prepared images and exit.
    public var previewDataset = false

    /// diffusers' train_dreambooth_lora.py names (their snake_case spellings of our own names work too, e.g.
    /// --num_class_images) and the names the other commands use for the same setting.
    static let aliases = ["max-train-steps": "steps", "learning-rate": "lr", "train-batch-size": "batch", "batch-size": "batch",
                          "output-dir": "out", "pretrained-model-name-or-path": "pipeline", "prior-loss-weight": "prior-weight",
                          "lr-scheduler": "lr-schedule", "lr-warmup-steps": "warmup",
                          "gradient-accumulation-steps": "gradient-accumulation", "checkpointing-steps": "save-every",
                          "checkpoint-every": "save-every", "random-flip": "flip", "resume-from-checkpoint": "resume",
                          "model": "pipeline"].merging(DatasetArguments.aliases) { a, _ in a }

    /// Options that a resumed run accepts (everything else is the run's saved setting; a single-file base
    /// model's --vae, --prediction and --tokenizer are not saved and are given again).
    static let resumeOptions: Set<String> = ModelOptions.names.union(["resume", "steps", "out", "report", "judge",
                                                                      "report-count", "report-cfg", "no-report", "help"])

    static let options: Set<String> = ModelOptions.names.union([
        "token", "class", "instance-prompt", "pipeline", "out", "resolution", "crop", "num-class-images", "prior-weight", "prior-target",
        "class-seed", "steps", "batch", "lr", "warmup", "lr-schedule", "gradient-accumulation", "rank", "alpha", "targets",
        "adapter", "target-rank", "text-encoder-lr", "seed", "snr-gamma", "noise-offset", "caption-dropout", "save-every", "sample-every", "validation-prompts", "resume",
        "report", "judge", "report-count", "report-cfg", "preview", "taesd",
    ]).union(DatasetArguments.options).union(kohyaOptions)
    static let flags: Set<String> = Set(["quantize-convs", "style", "flip", "no-prior", "train-text-encoder", "unet-only", "gradient-checkpointing",
                                     "help", "no-report"]).union(DatasetArguments.flags)

    public static let usage = """
        usage: train-style IMAGES_DIR --token WORD [--class NOUN] [--style] [options]
               (the embedded base model is trained by the separate `train-base` command)

        Learns a subject (or, with --style, a style) from a folder of pictures (PNG, JPEG, WebP) and writes a LoRA adapter.

        data
          --token WORD             trigger word (required for a plain folder), e.g. sks
          --class NOUN             the subject's class, e.g. dog: prompt "a photo of sks dog", prior preservation on
          --style                  learn a style: prompts "a picture in the style of sks"
          --instance-prompt TEXT   replaces the generated instance prompt (NAME.txt beside an image wins)
          --resolution N           training size (default: the model's, unet sample_size × VAE factor)
          --crop center|random     (default center)    --flip   random horizontal flips
        \(DatasetArguments.usage)
        prior preservation (A | B: the defaults for picture-world | latent models, as below)
          --no-prior               train without class images
          --num-class-images N     (default 100)       --prior-weight X   λ (3 | 1)
          --class-seed N           first seed of the class images (default 0)
          --prior-target base|noise  what the class rows learn (base | noise): base, the frozen base's own prediction
                                   for the same noisy class image and prompt, so that the class prompt keeps its
                                   predictions however well the base draws the class; noise, DreamBooth's loss
        optimisation (defaults per base model: pixel-space picture-world models such as the embedded
        pipelines/toy | latent Stable Diffusion models, i.e. a folder with vae/)
          --steps N (1500 | 400)  --lr X (1.5e-3 | 1e-4)  --rank N (8 | 4)  --targets conv|attention (conv | attention)
          --adapter lora|dora|adalora (lora; dora: a magnitude per output channel is trained too, saved as a DoRA
                                   file; adalora: --rank is the initial rank of SVD-form triplets on the targets'
                                   linear layers, cut to --target-rank per layer on average (rank / 3) between 10 %
                                   and 80 % of the steps, saved as a LoRA with a rank per module)
          --train-text-encoder / --unet-only (text encoder trained | not)  --text-encoder-lr X (1e-4 | 5e-5)
          --batch N (1)  --warmup N (0)  --lr-schedule constant|cosine|… (cosine | constant, see below)  --gradient-accumulation N (1)
          --caption-dropout P (0.1, with prior preservation 0 | 0): share of rows trained on the empty prompt, which keeps the unconditional
                                   prediction that guidance subtracts in place
          --seed N (0)  --snr-gamma X (5 | off; 0 turns it off): min-SNR-γ weighting of each row's timestep, as
                                   the embedded base was trained  --noise-offset X (0)  --alpha X (= rank)  --gradient-checkpointing
        run
          --pipeline PATH          base model, a diffusers folder or one original-layout .safetensors file
                                   (also -m, --model; default pipelines/toy); with --vae PATH, --prediction v|epsilon,
                                   --tokenizer DIR as in `generate`
          --out DIR, -o DIR        outputs root (default outputs/): runs/<time>-<token>/, adapters/<token>.safetensors
          --save-every N (100)  --sample-every N (500 | 0 = never): a grid of the instance prompt and three validation prompts  --validation-prompts FILE (default prompts/validation.txt)
          --preview taesd          decode the sample grids with the tiny autoencoder TAESD instead of the VAE (latent
                                   models): --taesd DIR (a diffusers AutoencoderTiny folder) or the model folder's taesd/
          --resume RUN_DIR         continue an interrupted run (its saved settings are used)
        \(kohyaUsage)
        fidelity report (picture-world models, when the judge weights exist; a --style run gets the style report:
        held-out prompts in the style, read as the style? content kept?)
          --judge FILE             judge weights (default \(ReportOptions.defaultJudge))
          --report-count N         seeds per prompt set (default 16)    --no-report   skip it
          --report-cfg G           the report pictures' guidance scale (default: the model's, see generate --cfg)
          train-style --report ADAPTER [IMAGES_DIR] [--pipeline DIR] [--judge FILE] [--report-count N] [--report-cfg G] [--token W --class N] [--out DIR]
                                   the report alone, into OUT/reports/<adapter name>/ (IMAGES_DIR: the subject's
                                   pictures, for judge-I and PRES)

        diffusers' trainer names work as well: --instance_data_dir, --max_train_steps, --learning_rate,
        --train_batch_size, --output_dir, --pretrained_model_name_or_path, --prior_loss_weight, --lr_scheduler,
        --lr_warmup_steps, --gradient_accumulation_steps, --checkpointing_steps, --random_flip, --num_class_images, …

        example: train-style images/ --token sks --class dog --steps 400
        """

    /// `--preview taesd [--taesd DIR]` (or `--taesd DIR` alone): the tiny autoencoder folder that decodes the
    /// sample grids; `--preview taesd` without `--taesd` takes the model folder's `taesd/`.
    static func previewTinyAutoencoder(_ a: ParsedArguments, pipeline: String) throws -> String? {
        if let mode = a.string("preview"), mode != "taesd" { throw CommandLineError.usage("--preview must be taesd, got \"\(mode)\"") }
        if let dir = a.string("taesd") { return dir }
        guard a.string("preview") != nil else { return nil }
        guard let bundled = ModelSource.bundledTinyAutoencoderFolder(modelPath: pipeline) else {
            throw CommandLineError.usage("--preview taesd needs a tiny autoencoder: --taesd DIR or the model folder's taesd/")
        }
        return bundled
    }

    public init(_ arguments: [String]) throws {
        let a = try ParsedArguments(arguments, options: Self.options.union(["instance-data-dir"]), flagNames: Self.flags,
                                    shortNames: ["-o": "out", "-m": "pipeline"],
                                    aliases: Self.aliases.merging(Self.kohyaAliases) { $1 })
        modelOptions = try ModelOptions(a)
        report = a.has("no-report") ? nil : try ReportOptions(a)
        if let resume = a.string("resume") {
            let run = URL(fileURLWithPath: resume).standardizedFileURL
            self.resume = run
            out = try a.string("out").map { URL(fileURLWithPath: $0) } ?? Self.outputRoot(ofRun: run)
            let ignored = a.values.keys.filter { !Self.resumeOptions.contains($0) } + a.flags.filter { !Self.resumeOptions.contains($0) }
            if let option = ignored.sorted().first {
                throw CommandLineError.usage("--\(option) cannot change a resumed run (it continues with its saved settings; "
                    + "--steps N extends or shortens it)")
            }
            guard a.positionals.isEmpty else {
                throw CommandLineError.usage("--resume takes no IMAGES_DIR (the run's saved one is used), got \(a.positionals[0])")
            }
            let checkpoint = run.appendingPathComponent(TrainingCheckpoint.fileName).path
            let saved = try TrainingCheckpoint.read(path: checkpoint)
            config = try JSONDecoder().decode(StyleTrainingConfig.self, from: Data(saved.configuration.utf8))
            resumeStep = saved.state.step
            if let steps = try a.int("steps", in: 1...10_000_000) {
                guard steps >= saved.state.step else {
                    throw CommandLineError.usage("--steps \(steps) is fewer than the \(saved.state.step) steps the run has done")
                }
                config.loop.steps = steps     // the learning-rate schedule is planned over the new total
            }
            return
        }
        out = URL(fileURLWithPath: a.string("out") ?? "outputs")
        let folders = a.positionals + (a.values["instance-data-dir"] ?? [])
        guard folders.count == 1 else {
            throw CommandLineError.usage(folders.isEmpty ? "missing IMAGES_DIR (see --help)"
                                         : "one IMAGES_DIR expected, got \(folders.joined(separator: " "))")
        }
        let firstConcept = try? KohyaLayout.concepts(in: URL(fileURLWithPath: folders[0]))?.concepts.first
        guard let token = a.string("token") ?? firstConcept?.token, !token.isEmpty else {
            throw CommandLineError.usage("--token is required (e.g. --token sks)")
        }
        try Self.checkToken(token)
        let prompt = InstancePrompt(token: token, className: a.string("class") ?? (a.has("token") ? nil : firstConcept?.className),
                                    style: a.has("style"), override: a.string("instance-prompt"))
        // Absolute paths, so that `--resume` works from any working folder.
        func absolute(_ path: String) -> String { URL(fileURLWithPath: path).standardizedFileURL.path }
        var c = StyleTrainingConfig(imagesDirectory: absolute(folders[0]),
                                    pipeline: absolute(try GenerateCommand.pipelineFolder(a.string("pipeline"))), prompt: prompt)
        let preset = TrainingPreset(pipeline: c.pipeline)
        if a.has("train-text-encoder"), a.has("unet-only") {
            throw CommandLineError.usage("--train-text-encoder and --unet-only contradict each other")
        }
        c.resolution = try a.int("resolution", in: 8...4096)
        if let crop = a.string("crop") {
            guard let mode = CropMode(rawValue: crop) else { throw CommandLineError.usage("--crop must be center or random") }
            c.crop = mode
        }
        c.flip = a.has("flip")
        c.prior = !a.has("no-prior")
        c.numClassImages = try a.int("num-class-images", in: 1...100_000) ?? c.numClassImages
        c.priorWeight = Float(try a.double("prior-weight") ?? preset.priorWeight)
        c.classSeed = try a.uint64("class-seed") ?? 0
        c.loop.steps = try a.int("steps", in: 1...10_000_000) ?? preset.steps
        c.batch = try a.int("batch", in: 1...1024) ?? c.batch
        c.loop.learningRate = Float(try a.double("lr") ?? preset.learningRate)
        c.loop.warmupSteps = try a.int("warmup", in: 0...10_000_000) ?? 0
        if let s = a.string("lr-schedule") {
            guard let decay = LearningRateDecay(rawValue: s) else {
                throw CommandLineError.usage("--lr-schedule must be one of \(LearningRateDecay.allCases.map(\.rawValue).joined(separator: ", ")), got \(s)")
            }
            c.loop.decay = decay
        } else {
            c.loop.decay = preset.decay
        }
        c.loop.gradientAccumulation = try a.int("gradient-accumulation", in: 1...4096) ?? 1
        c.loop.saveEvery = try a.int("save-every", in: 0...Int.max) ?? 100
        c.loop.sampleEvery = try a.int("sample-every", in: 0...Int.max) ?? preset.sampleEvery
        c.previewTinyAutoencoder = try Self.previewTinyAutoencoder(a, pipeline: c.pipeline).map(absolute)
        c.rank = try a.int("rank", in: 1...1024) ?? preset.rank
        c.alpha = try a.double("alpha").map(Float.init)
        if let k = a.string("adapter") {
            guard let kind = TrainedAdapterKind(rawValue: k) else { throw CommandLineError.usage("--adapter must be lora or dora") }
            c.adapter = kind == .lora ? nil : kind
        }
        if c.adapter == .adalora {
            let target = try a.int("target-rank", in: 1...c.rank) ?? max(1, c.rank / 3)
            let steps = c.loop.steps
            c.adaLoRA = AdaLoRASettings(initialRank: c.rank, targetRank: target, tinit: steps / 10, tfinal: steps / 5,
                                        deltaT: max(1, steps / 100), totalSteps: steps)
            if let problem = c.adaLoRA?.problem { throw CommandLineError.usage(problem) }
        } else if a.string("target-rank") != nil {
            throw CommandLineError.usage("--target-rank is for --adapter adalora")
        }
        if let t = a.string("targets") {
            guard let targets = AdapterTargets(rawValue: t) else { throw CommandLineError.usage("--targets must be attention or conv") }
            c.targets = targets
        } else {
            c.targets = preset.targets
        }
        c.trainTextEncoder = a.has("train-text-encoder") || (preset.trainTextEncoder && !a.has("unet-only"))
        c.textEncoderLearningRate = Float(try a.double("text-encoder-lr") ?? preset.textEncoderLearningRate)
        c.seed = try a.uint64("seed") ?? 0
        let gamma = try a.double("snr-gamma") ?? preset.snrGamma ?? 0
        guard gamma >= 0, gamma.isFinite else { throw CommandLineError.usage("--snr-gamma must be 0 (off) or positive, got \(gamma)") }
        c.snrGamma = gamma > 0 ? gamma : nil
        c.noiseOffset = Float(try a.double("noise-offset") ?? 0)
        c.gradientCheckpointing = a.has("gradient-checkpointing")
        c.dataset = try DatasetArguments.settings(a, absolute: absolute)
        // Both depend on whether prior preservation is on (class or --reg given, no --no-prior).
        let target = try a.string("prior-target").map { t in
            guard let target = PriorTarget(rawValue: t) else { throw CommandLineError.usage("--prior-target must be noise or base, got \(t)") }
            return target
        } ?? (c.usesPrior ? preset.priorTarget : .noise)
        c.priorTarget = target == .noise ? nil : target     // nil: the noise, as configurations saved before the option
        let dropout = try a.double("caption-dropout") ?? (c.usesPrior ? preset.captionDropoutWithPrior : preset.captionDropout)
        guard (0...1).contains(dropout) else { throw CommandLineError.usage("--caption-dropout must be in 0...1, got \(dropout)") }
        c.captionDropout = dropout > 0 ? dropout : nil
        previewDataset = a.has("preview-dataset")
        let promptsFile = a.string("validation-prompts") ?? "prompts/validation.txt"
        if FileManager.default.fileExists(atPath: promptsFile) {
            let lines = try String(contentsOfFile: promptsFile, encoding: .utf8).split(whereSeparator: \.isNewline)
            c.validationPrompts = lines.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        } else if a.has("validation-prompts") {
            throw CommandLineError.failure("validation prompts file \(promptsFile) does not exist")
        }
        try Self.applyKohyaOptions(a, to: &c)
        config = c
    }
}

/// Default optimisation settings for a base model. The embedded picture-world model is small and pixel-space:
/// its subject needs a texture (the checkered coat) that attention-only adapters do not learn (measured with the
/// judge: 0 % of the coat with rank-16 attention adapters after 1500 steps, 56 % with conv adapters), so its
/// defaults train conv (LoCon) adapters and the text encoder, harder and longer. Latent Stable Diffusion models
/// get the defaults of diffusers' DreamBooth-LoRA script.
extension TrainStyleArguments {
    /// A trigger word must be one word that can also be a file name: letters, digits, `-`, `_` and `.`, not
    /// starting with `.` or `-` (the adapter is written as `adapters/<token>.safetensors`).
    static func checkToken(_ token: String) throws {
        let allowed = token.unicodeScalars.allSatisfy {
            CharacterSet.alphanumerics.contains($0) || $0 == "-" || $0 == "_" || $0 == "."
        }
        guard allowed, !token.hasPrefix("."), !token.hasPrefix("-"), token.utf8.count <= 200 else {
            let hint = token.contains(" ") ? "; put the class in --class (e.g. --token sks --class dog)" : ""
            throw CommandLineError.usage("--token must be one word of letters, digits, - or _ (it names the adapter file), "
                + "got \"\(token)\"\(hint)")
        }
    }

    /// The outputs root of a run folder `ROOT/runs/NAME` (the layout train-style writes).
    static func outputRoot(ofRun run: URL) throws -> URL {
        let parent = run.deletingLastPathComponent()
        guard parent.lastPathComponent == "runs" else {
            throw CommandLineError.usage("cannot tell which outputs folder \(run.path) belongs to (it is not inside a runs/ "
                + "folder); pass --out DIR")
        }
        return parent.deletingLastPathComponent()
    }
}

public struct TrainingPreset: Equatable, Sendable {
    public var name: String
    public var steps: Int
    public var learningRate: Double
    public var decay: LearningRateDecay
    public var rank: Int
    public var targets: AdapterTargets
    public var trainTextEncoder: Bool
    public var textEncoderLearningRate: Double
    /// Caption dropout without prior preservation (style runs, --no-prior) and with it.
    public var captionDropout: Double
    public var captionDropoutWithPrior: Double
    public var priorTarget: PriorTarget
    public var priorWeight: Double
    /// Min-SNR-γ loss weighting (nil: every timestep weighs the same).
    public var snrGamma: Double?
    /// Steps between sample grids (0: none; a grid costs seconds on the embedded model, minutes on SD at 512²).
    public var sampleEvery: Int

    public static let pictureWorld = TrainingPreset(name: "picture-world", steps: 1500, learningRate: 1.5e-3, decay: .cosine, rank: 8,
                                                    targets: .conv, trainTextEncoder: true, textEncoderLearningRate: 1e-4,
                                                    captionDropout: 0.1, captionDropoutWithPrior: 0, priorTarget: .base,
                                                    priorWeight: 3, snrGamma: 5, sampleEvery: 500)
    public static let stableDiffusion = TrainingPreset(name: "stable-diffusion", steps: 400, learningRate: 1e-4, decay: .constant, rank: 4,
                                                       targets: .attention, trainTextEncoder: false,
                                                       textEncoderLearningRate: 5e-5, captionDropout: 0, captionDropoutWithPrior: 0,
                                                       priorTarget: .noise, priorWeight: 1, snrGamma: nil, sampleEvery: 0)
}

extension TrainingPreset {
    /// The preset of the base model at `pipeline`: latent models (a `vae` in `model_index.json`, or a
    /// single-file checkpoint) get `stableDiffusion`; a folder that cannot be opened gets `pictureWorld`
    /// (loading it reports why).
    public init(pipeline: String) {
        let latent = (try? DiffusersFolder(path: pipeline))?.isLatent ?? false || ModelSource(path: pipeline).isSingleFile
        self = latent ? .stableDiffusion : .pictureWorld
    }
}

public enum TrainStyleCommand {
    /// Runs the command; returns the exit code (0, or 130 after a stop request).
    public static func run(_ arguments: [String]) throws -> Int32 {
        if arguments.contains("--help") || arguments.contains("-h") { print(TrainStyleArguments.usage); return 0 }
        if arguments.contains(where: { $0 == "--report" || $0.hasPrefix("--report=") }) { return try runReport(arguments) }
        let args = try TrainStyleArguments(arguments)
        let c = args.config
        let console = TrainingConsole()
        let adapterDir = try checkBeforeWork(args, console: console)
        let start = Date()
        let model = try args.modelOptions.load(path: c.pipeline, program: "train-style")
        let runDir = args.resume ?? args.out.appendingPathComponent("runs/\(timestamp())-\(c.prompt.token)")
        if args.previewDataset { return try DatasetArguments.preview(c, model: model, runDirectory: runDir, console: console) }
        var classFolder: URL?
        if c.usesPrior, c.dataset?.regDirectory == nil, let classPrompt = c.prompt.classPrompt {
            let key = ClassImageKey(modelHash: try model.modelHash() ?? model.name, prompt: classPrompt, seed: c.classSeed,
                                    resolution: c.resolution ?? model.defaultSize, guidance: model.defaultGuidance)
            classFolder = try PriorPreservation.classImages(model: model, key: key, count: c.numClassImages,
                                                            root: args.out.appendingPathComponent("class-images")) { done, total in
                if total > 0 { console.note("class images for \"\(classPrompt)\": \(done)/\(total)") }
            }
        }
        let trainer = try StyleTrainer(config: c, model: model, runDirectory: runDir, classImages: classFolder)
        for warning in trainer.instances.warnings + (trainer.classes?.warnings ?? []) { console.note("warning: " + warning) }
        DatasetArguments.report(trainer.instances, classes: trainer.classes, console: console)
        if args.resume != nil {
            try trainer.resume()
            console.note("resuming \(runDir.path) from step \(trainer.loop.state.step) of \(c.loop.steps)")
        }
        let prompts = [c.prompt.text] + c.validationPrompts.prefix(3)
        trainer.loop.preview = { step in
            try trainer.writePreview(to: runDir.appendingPathComponent(String(format: "samples-%06d.png", step)), prompts: prompts)
        }
        console.note("run \(runDir.path): \(trainer.instances.examples.count) images at \(trainer.resolution) px, "
            + "prompt \"\(c.prompt.text)\"" + (trainer.classes.map { ", \($0.examples.count) class images, λ \(c.priorWeight), toward "
                + (c.priorTarget == .base ? "the base's predictions" : "the noise") } ?? ""))
        console.note(trainer.parameterReport)
        console.note(String(format: "settings: %d steps, lr %g, rank %d, %@ adapters, text encoder %@, caption dropout %g, %@ "
                            + "(defaults: %@ preset)", c.loop.steps, c.loop.learningRate, c.rank, c.targets.rawValue,
                            c.trainTextEncoder ? String(format: "trained (lr %g)", c.textEncoderLearningRate) : "frozen",
                            c.captionDropout ?? 0, c.snrGamma.map { String(format: "min-SNR γ %g", $0) } ?? "no min-SNR weighting",
                            TrainingPreset(pipeline: c.pipeline).name))
        for line in TrainStyleArguments.kohyaNotes(c, trainer: trainer) { console.note(line) }
        StopRequest.install()
        trainer.loop.shouldStop = { StopRequest.isRequested }
        trainer.loop.onEvent = console.handle
        let outcome = try trainer.loop.run()
        try LossCurve.write(trainer.loop.state.lossHistory, validation: trainer.loop.state.validationLosses ?? [],
                            to: runDir.appendingPathComponent("loss.png"))
        if case .interrupted(let step) = outcome {
            console.note("stopped at step \(step); continue with: train-style --resume \(runDir.path)")
            return 130
        }
        let adapterPath = adapterDir.appendingPathComponent("\(c.prompt.token).safetensors").path
        if let kept = try keepEarlierAdapter(at: adapterPath) {
            console.note("an adapter \(c.prompt.token).safetensors was already there: kept it as \(kept)")
        }
        try trainer.writeAdapter(to: adapterPath)
        if let ranks = trainer.adaLoRARankReport { print(ranks) }
        let example = c.prompt.style ? "a house in the style of \(c.prompt.token)"
            : "a photo of \(c.prompt.token)\(c.prompt.className.map { " " + $0 } ?? "") in the snow"
        console.note(String(format: "done: %d steps; wall time %.0f s (training %.0f s over all sessions); adapter %@; loss curve %@",
                            trainer.loop.state.step, Date().timeIntervalSince(start), trainer.loop.state.elapsed, adapterPath,
                            runDir.appendingPathComponent("loss.png").path))
        print("generate \"\(example)\" --pipeline \(c.pipeline) --lora \(adapterPath)")
        if let report = args.report, c.prompt.style {
            if let obstacle = report.obstacle(model: model), !report.judgeGiven {
                console.note("no style report: \(obstacle)")
            } else {
                try report.runStyle(pipeline: c.pipeline, adapter: adapterPath, folder: runDir, token: c.prompt.token,
                                    instances: trainer.instances.examples.map(\.image), console: console)
            }
        } else if let report = args.report, c.prompt.className != nil {
            if let obstacle = report.obstacle(model: model), !report.judgeGiven {
                console.note("no fidelity report: \(obstacle)")
            } else {
                try report.run(pipeline: c.pipeline, adapter: adapterPath, folder: runDir, token: c.prompt.token,
                               className: c.prompt.className, priorPreservation: c.usesPrior,
                               instances: trainer.instances.examples.map(\.image), console: console)
            }
        }
        return 0
    }

    /// Moves an existing adapter at `path` aside to `previous/<name>-N.safetensors` beside it (the first free N),
    /// so that a new run of the same token keeps the older adapter; returns where it went (nil: nothing there).
    static func keepEarlierAdapter(at path: String) throws -> String? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let url = URL(fileURLWithPath: path)
        let folder = try OutputFolder(path: url.deletingLastPathComponent().appendingPathComponent("previous").path).url
        let stem = url.deletingPathExtension().lastPathComponent
        var n = 1
        while true {
            let target = folder.appendingPathComponent("\(stem)-\(n).safetensors").path
            if link(path, target) == 0 {
                unlink(path)
                return target
            }
            guard errno == EEXIST else {
                throw CommandLineError.failure("cannot keep the earlier adapter \(path) as \(target): \(String(cString: strerror(errno)))")
            }
            n += 1
        }
    }

    /// Checks the base model, every output folder and the images folder before any work, so that nothing fails
    /// after training; warns about --class with --style. Returns the adapter folder.
    static func checkBeforeWork(_ args: TrainStyleArguments, console: TrainingConsole) throws -> URL {
        let c = args.config
        guard FileManager.default.fileExists(atPath: c.pipeline) else {
            throw CommandLineError.failure("base model \(c.pipeline) does not exist; pass --pipeline PATH (a diffusers folder or a .safetensors file)"
                + (c.pipeline.hasSuffix("pipelines/toy") ? " or build the embedded one with `train-base`" : ""))
        }
        _ = try OutputFolder(path: args.out.path)
        let adapterDir = try OutputFolder(path: args.out.appendingPathComponent("adapters").path).url
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: c.imagesDirectory, isDirectory: &isFolder), isFolder.boolValue else {
            throw CommandLineError.failure("images folder \(c.imagesDirectory) does not exist or is not a folder")
        }
        _ = try OutputFolder(path: args.out.appendingPathComponent("runs").path)
        if c.prompt.style, let noun = c.prompt.className, args.resume == nil {
            console.note("warning: --class \(noun) with --style: a style has no class; the class only sets the "
                + "prior-preservation prompt \"\(c.prompt.classPrompt ?? "")\"" + (c.usesPrior ? "" : " (off here)"))
        }
        return adapterDir
    }

    private static func timestamp() -> String {
        let f = DateFormatter()
        f.dateFormat = "yyyyMMdd-HHmmss"
        f.timeZone = TimeZone(identifier: "UTC")
        return f.string(from: Date())
    }
}
