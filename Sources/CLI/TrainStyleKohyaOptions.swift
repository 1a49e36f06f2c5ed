// train-style's options that kohya's sd-scripts users carry over: the optimiser and its arguments, the
// further learning-rate schedules' parameters, continuing from an adapter, the adapter file's precision,
// sample prompts with kohya's per-line options, and a held-out validation loss.
import Foundation
import Training

extension TrainStyleArguments {
    static let kohyaOptions: Set<String> = ["optimizer", "optimizer-args", "lr-cycles", "lr-power", "init-lora", "save-precision",
                                            "sample-prompts", "validation-split", "validate-every"]

    /// kohya's spellings (their snake_case forms work too, e.g. --optimizer_type, --network_weights).
    static let kohyaAliases = ["optimizer-type": "optimizer", "lr-scheduler-num-cycles": "lr-cycles",
                               "lr-scheduler-power": "lr-power", "network-weights": "init-lora",
                               "sample-every-n-steps": "sample-every", "min-snr-gamma": "snr-gamma"]

    static let kohyaUsage = """
        kohya's options (sd-scripts spellings work too: --optimizer_type, --optimizer_args, --network_weights,
        --lr_scheduler_num_cycles, --lr_scheduler_power, --save_precision, --sample_prompts, --sample_every_n_steps,
        --min_snr_gamma)
          --optimizer adamw|prodigy|adafactor   (adamw). prodigy: --lr defaults to 1 (Prodigy finds the scale)
                                   and the text encoder takes the same rate; adafactor: relative_step=True unless set,
                                   which replaces --lr and the schedule with Adafactor's own step size
          --optimizer-args "K=V K=V"  e.g. "decouple=True weight_decay=0.01 use_bias_correction=True safeguard_warmup=True
                                   d_coef=2" (Prodigy), "scale_parameter=False relative_step=False warmup_init=False" (Adafactor),
                                   "betas=0.9,0.999 weight_decay=0.01" (AdamW)
          --lr-schedule constant|constant_with_warmup|linear|cosine|cosine_with_restarts|polynomial
                                   --lr-cycles N (1: restarts of cosine_with_restarts)  --lr-power X (1: polynomial)
          --init-lora FILE         start from this adapter's weights (same targets, rank and alpha as the run)
          --save-precision fp16|bf16|fp32   the adapter file's tensors (fp16)
          --sample-prompts FILE    sample grids of these prompts, one a line, with kohya's options --n NEGATIVE
                                   --w W --h H --d SEED --s STEPS --l CFG (without --sample-every: once, at the end)
          --validation-split P     hold out this share of the instance images; their loss at fixed noise and timesteps
                                   is logged and drawn in loss.png  --validate-every N (steps/20)
        """

    /// What a run does differently from the defaults because of kohya's options, one line each.
    static func kohyaNotes(_ c: StyleTrainingConfig, trainer: StyleTrainer) -> [String] {
        var lines: [String] = []
        if c.loop.optimizer != nil || c.loop.decay != .constant {
            lines.append("optimizer \(c.loop.optimizerDescription), lr schedule \(c.loop.decay.rawValue)")
        }
        if case .adafactor(let a) = c.loop.optimizer, a.relativeStep {
            lines.append("Adafactor takes relative steps: --lr and --lr-schedule are not used (optimizer args relative_step=False to use them)")
        }
        if let path = c.initLora { lines.append("the adapter starts from \(path)") }
        if !trainer.validationIndices.isEmpty {
            let names = trainer.validationIndices.map { (trainer.instances.examples[$0].file as NSString).lastPathComponent }
            lines.append("validation: \(names.count) of \(trainer.instances.examples.count) images held out (\(names.joined(separator: ", ")))")
        }
        lines.append("adapter file precision \((c.savePrecision ?? .fp16).rawValue)")
        return lines
    }

    /// Applies kohya's options to `c` (after the other options, whose defaults some of them change).
    static func applyKohyaOptions(_ a: ParsedArguments, to c: inout StyleTrainingConfig) throws {
        let optimizerArgs = a.values["optimizer-args"] ?? []
        if let name = a.string("optimizer") {
            guard let kind = OptimizerKind(rawValue: name.lowercased()) else {
                throw CommandLineError.usage("--optimizer must be adamw, prodigy or adafactor, got \(name)")
            }
            try c.loop.setOptimizer(kind, arguments: optimizerArgs)
            if kind == .prodigy {
                if !a.has("lr") { c.loop.learningRate = 1 }
                if !a.has("text-encoder-lr") { c.textEncoderLearningRate = c.loop.learningRate }
            }
        } else if !optimizerArgs.isEmpty {
            try c.loop.setOptimizer(.adamw, arguments: optimizerArgs)
        }
        if let cycles = try a.int("lr-cycles", in: 1...100_000) {
            guard c.loop.decay == .cosineWithRestarts else {
                throw CommandLineError.usage("--lr-cycles applies to --lr-schedule cosine_with_restarts")
            }
            c.loop.lrCycles = cycles
        }
        if let power = try a.double("lr-power") {
            guard c.loop.decay == .polynomial else { throw CommandLineError.usage("--lr-power applies to --lr-schedule polynomial") }
            guard power > 0, power.isFinite else { throw CommandLineError.usage("--lr-power must be positive, got \(power)") }
            c.loop.lrPower = power
        }
        if let file = a.string("init-lora") {
            let path = URL(fileURLWithPath: file).standardizedFileURL.path
            guard FileManager.default.fileExists(atPath: path) else {
                throw CommandLineError.failure("--init-lora \(file): no such file")
            }
            c.initLora = path
        }
        if let p = a.string("save-precision") {
            guard let precision = SavePrecision(rawValue: p == "float" ? "fp32" : p) else {
                throw CommandLineError.usage("--save-precision must be fp16, bf16 or fp32, got \(p)")
            }
            c.savePrecision = precision
        }
        if let file = a.string("sample-prompts") {
            c.samplePrompts = try SamplePrompt.parse(file: file)
            if !a.has("sample-every"), c.loop.sampleEvery == 0 { c.loop.sampleEvery = c.loop.steps }
        }
        if let share = try a.double("validation-split") {
            guard share > 0, share < 1 else { throw CommandLineError.usage("--validation-split must be between 0 and 1, got \(share)") }
            c.validationSplit = share
        }
        if let every = try a.int("validate-every", in: 1...Int.max) {
            guard c.validationSplit != nil else { throw CommandLineError.usage("--validate-every needs --validation-split") }
            c.loop.validateEvery = every
        }
    }
}
