// train-base: trains the embedded base model (`pipelines/toy/` with `--out pipelines/toy`) from scratch on the
// picture world. Without --out the model goes to a new folder, outputs/base-models/<time>.
//
//     train-base [--steps N] [--batch B] [--lr LR] [--warmup N] [--seed S] [--arch s|m|l|micro]
//                [--omit-color P [--usual-colors]] [--omit-place P] [--init MODEL_DIR] [--ema DECAY]
//                [--out DIR] [--run DIR] [--checkpoint-every N] [--sample-every N] [--resume] [--bench N]
//                [--trained-weights]
//     train-base --export [--run DIR] [--out DIR] [--trained-weights]   (the run's checkpoint as a pipeline folder)
//     train-base --evaluate MODEL_DIR --judge JUDGE.safetensors [--count N] [--sample-steps N] [--guidance G]
//                [--guidance-rescale φ] [--save DIR] [--prompt TEXT]
//
// The run folder keeps `checkpoint.safetensors` (weights, optimiser, step; written atomically every
// N steps and on SIGINT), `export/` (the latest weights as a pipeline folder) and `samples/step-N.png`.
// At the end the pipeline folder is written to `--out`. Arguments go through CLI's parser: usage errors exit 2,
// failures 1.
import BaseModel
import CLI
import Foundation
import Judge
import PNGImage
import PictureWorld
import Pipeline
import SafeTensors
import Training

func say(_ line: String) {
    print(line)
    fflush(stdout)
}

struct Options {
    var config = BaseTrainingConfig()
    var arch = "s"
    var out = TrainBaseFolders.defaultOut(date: Date())
    var run = "runs/train-base"
    var resume = false
    var bench = 0
    var exportOnly = false
    var trainedWeights = false
    var evaluate: String?
    var judge: String?
    var count = 200
    var sampleSteps = 20
    var guidance: Double?       // --evaluate: the folder's _guidance_scale when not given
    var guidanceRescale = 0.0
    var save: String?
    var prompt: String?
    var initFrom: String?
}

let usage = """
    usage: train-base [--steps N] [--batch B] [--lr LR] [--warmup N] [--seed S] [--arch s|m|l|micro] [--out DIR]
                      [--omit-color P [--usual-colors]] [--omit-place P] [--init MODEL_DIR] [--ema DECAY]
                      [--run DIR] [--checkpoint-every N] [--sample-every N] [--resume] [--bench N] [--export]
                      [--trained-weights]
           train-base --evaluate MODEL_DIR --judge JUDGE.safetensors [--count N] [--sample-steps N] [--guidance G]
                      [--guidance-rescale φ] [--save DIR] [--prompt TEXT]

      --guidance G (--evaluate) classifier-free guidance scale (default: the folder's model_index.json
                   _guidance_scale, else \(ToyExport.recommendedGuidance))
      --save DIR   (--evaluate) also write every picture as DIR/NNN.png, each prompt with the judge's
                   reading to DIR/verdicts.txt, and the first 25 as DIR/heldout-grid.png (prompt-grid.png with --prompt)
      --prompt TEXT (--evaluate) one prompt for every picture (seeds 0..<N) instead of the held-out set, e.g.
                   "a photo of a dog": how often the judge reads what it names (attributes it leaves out are
                   not checked) and how sure it is
      --out DIR    where the trained model goes (default: a new folder outputs/base-models/<time>;
                   --out pipelines/toy replaces the embedded model)
      --run DIR    checkpoints and samples (default runs/train-base); a run folder with a checkpoint is
                   continued with --resume, never started over
      --omit-color P, --omit-place P
                   probability that a training caption leaves out the object's colour / the place (each
                   independently; default 0): `a photo of a dog`, `a red car`, `a dog on the beach`
      --usual-colors an object whose caption leaves its colour out wears its usual colour (a brown dog, a red
                   house, a green tree …), as people name a colour only when it is not the expected one; without
                   it an unnamed colour is any of the eleven
      --init MODEL_DIR start from that exported model's weights (same --arch; e.g. pipelines/toy) instead of fresh
                   ones: a fine-tune with its own learning-rate plan and data seed (use another --seed to see new
                   scenes); a resumed run keeps the weights of its checkpoint
      --ema DECAY  keep a moving average of the weights (diffusers' --use_ema; decay min(DECAY, (1+s)/(10+s))
                   at update s+1) and export it and draw the sample grids from it instead of the last weights;
                   the warm-up keeps the average to about the last ninth of the steps done until 1/(1−DECAY)
      --trained-weights with --ema (or --export of a run that kept an average): export the last trained weights
                   and draw the sample grids from them; the checkpoints keep the average all the same
    """

func parse(_ arguments: [String]) throws -> Options? {
    let a = try ParsedArguments(arguments, options: ["steps", "batch", "lr", "warmup", "seed", "arch", "out", "run",
                                                     "checkpoint-every", "sample-every", "bench", "evaluate", "judge",
                                                     "count", "sample-steps", "guidance", "omit-color", "omit-place", "save",
                                                     "prompt", "init", "guidance-rescale", "ema"],
                                flagNames: ["resume", "export", "usual-colors", "trained-weights"], shortNames: ["-o": "out"],
                                aliases: ["batch-size": "batch", "save-every": "checkpoint-every", "cfg": "guidance",
                                          "max-train-steps": "steps", "learning-rate": "lr"])
    if a.has("help") { print(usage); return nil }
    guard a.positionals.isEmpty else { throw CommandLineError.usage("unknown argument \(a.positionals[0]) (see --help)") }
    var o = Options()
    o.config.steps = try a.int("steps", in: 0...Int.max) ?? o.config.steps
    o.config.batchSize = try a.int("batch", in: 1...Int.max) ?? o.config.batchSize
    o.config.learningRate = try a.float("lr") ?? o.config.learningRate
    o.config.warmupSteps = try a.int("warmup", in: 0...Int.max) ?? o.config.warmupSteps
    o.config.seed = try a.uint64("seed") ?? o.config.seed
    if let ema = try a.float("ema") {
        guard ema >= 0 && ema < 1 else { throw CommandLineError.usage("--ema takes a decay in [0, 1), e.g. 0.999") }
        o.config.emaDecay = ema
    }
    let omitColor = try a.double("omit-color"), omitPlace = try a.double("omit-place")
    let usualColors = a.has("usual-colors")
    if usualColors && omitColor == nil { throw CommandLineError.usage("--usual-colors needs --omit-color P") }
    if omitColor != nil || omitPlace != nil {
        do {
            o.config.captionOmission = try CaptionOmission(color: omitColor ?? 0, place: omitPlace ?? 0,
                                                           usualColors: usualColors)
        } catch {
            throw CommandLineError.usage("--omit-color and --omit-place take a probability in [0, 1]")
        }
    }
    o.arch = a.string("arch") ?? o.arch
    o.out = a.string("out") ?? o.out
    o.run = a.string("run") ?? o.run
    o.config.checkpointEvery = try a.int("checkpoint-every", in: 1...Int.max) ?? o.config.checkpointEvery
    o.config.sampleEvery = try a.int("sample-every", in: 0...Int.max) ?? o.config.sampleEvery
    o.resume = a.has("resume")
    o.bench = try a.int("bench", in: 0...Int.max) ?? o.bench
    o.exportOnly = a.has("export")
    o.trainedWeights = a.has("trained-weights")
    o.evaluate = a.string("evaluate")
    o.judge = a.string("judge")
    o.count = try a.int("count", in: 1...Int.max) ?? o.count
    o.sampleSteps = try a.int("sample-steps", in: 1...Int.max) ?? o.sampleSteps
    o.guidance = try a.double("guidance")
    o.guidanceRescale = try a.double("guidance-rescale") ?? o.guidanceRescale
    guard (0...1).contains(o.guidanceRescale) else { throw CommandLineError.usage("--guidance-rescale takes a number in [0, 1]") }
    o.save = a.string("save")
    o.prompt = a.string("prompt")
    o.initFrom = a.string("init")
    if o.initFrom != nil && (o.evaluate != nil || o.exportOnly) { throw CommandLineError.usage("--init goes with a training run") }
    if o.prompt != nil && o.evaluate == nil { throw CommandLineError.usage("--prompt goes with --evaluate MODEL_DIR") }
    return o
}

func duration(_ s: Double) -> String {
    let t = Int(s.rounded())
    return t >= 3600 ? String(format: "%dh%02dm", t / 3600, t % 3600 / 60) : String(format: "%dm%02ds", t / 60, t % 60)
}

func evaluate(_ o: Options, modelPath: String) throws {
    guard let judgePath = o.judge else { throw CommandLineError.usage("--evaluate needs --judge JUDGE.safetensors") }
    let judge = try Judge(contentsOf: judgePath)
    let model = try StableDiffusionModel(path: modelPath)
    let guidance = o.guidance ?? model.recommendedGuidance ?? ToyExport.recommendedGuidance
    let prompts: [String] = o.prompt.map { [String](repeating: $0, count: o.count) } ?? PromptSets.heldout(count: o.count).map(\.prompt)
    let clock = Date()
    var pairs: [(prompt: String, image: Image)] = []
    for (k, start) in stride(from: 0, to: prompts.count, by: 25).enumerated() {
        let part = Array(prompts[start..<min(start + 25, prompts.count)])
        let images = try ToyExport.sampleBatch(model, prompts: part, steps: o.sampleSteps, guidance: guidance,
                                               guidanceRescale: o.guidanceRescale, seed: UInt64(start))
        pairs += zip(part, images).map { ($0, $1) }
        if k == 0, let dir = o.save {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try PNG.write(ToyExport.grid(images, columns: 5), to: dir + (o.prompt == nil ? "/heldout-grid.png" : "/prompt-grid.png"))
        }
        say("evaluated \(pairs.count)/\(prompts.count) (\(duration(Date().timeIntervalSince(clock))))")
    }
    let verdicts = try judge.evaluate(pairs.map(\.image))
    var object = 0, color = 0, background = 0, all = 0, clean = 0
    for ((prompt, _), v) in zip(pairs, verdicts) {
        let parsed = Caption.parse(prompt)
        if parsed.object == v.object { object += 1 }
        if parsed.color == v.color { color += 1 }
        if parsed.background == v.background { background += 1 }
        if Fidelity.matchesPrompt(prompt, v) { all += 1 }
        if Fidelity.matchesPrompt(prompt, v) && v.clean { clean += 1 }
    }
    if let dir = o.save {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var lines: [String] = []
        for (i, ((prompt, image), v)) in zip(pairs, verdicts).enumerated() {
            try PNG.write(image, to: dir + String(format: "/%03d.png", i))
            lines.append(String(format: "%03d %@ | %@ %@ %@%@%@", i, prompt, v.object?.word ?? "no-object", v.color.word,
                                v.background.word, Fidelity.matchesPrompt(prompt, v) ? "" : "  MISS", v.clean ? "" : "  degraded"))
        }
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: dir + "/verdicts.txt"), options: .atomic)
    }
    let n = Double(pairs.count)
    // improved precision / recall in the judge's feature space against rendered pictures of the same prompts
    let reference = try o.prompt.map { try PictureMeasures.renderedReference(for: $0, count: 200) }
        ?? pairs.enumerated().map { i, pair in try PictureMeasures.renderedReference(for: pair.prompt, count: 1, seed: 0x5EF0 &+ UInt64(i))[0] }
    let fresh = try o.prompt.map { try PictureMeasures.renderedReference(for: $0, count: pairs.count, seed: 0xF8E5) }
        ?? pairs.enumerated().map { i, pair in try PictureMeasures.renderedReference(for: pair.prompt, count: 1, seed: 0xF8E5 &+ UInt64(i))[0] }
    let referenceFeatures = try judge.features(reference)
    let pr = PictureMeasures.precisionRecall(generated: try judge.features(pairs.map(\.image)), real: referenceFeatures)
    let calibration = PictureMeasures.precisionRecall(generated: try judge.features(fresh), real: referenceFeatures)
    let manifold = String(format: "precision %.1f%% (pictures inside the manifold of %d renders of the same prompts, judge features, "
        + "k = 3), recall %.1f%%; fresh renders score %.1f%% / %.1f%%", 100 * pr.precision, reference.count, 100 * pr.recall,
        100 * calibration.precision, 100 * calibration.recall)
    let rescaleNote = o.guidanceRescale > 0 ? String(format: ", rescale %.2f", o.guidanceRescale) : ""
    if let prompt = o.prompt {
        let named = Caption.parse(prompt)
        let sure = zip(pairs, verdicts).filter { Fidelity.matchesPrompt($0.0.prompt, $0.1) && $0.1.objectProbability >= 0.9 }.count
        let none = verdicts.filter(Fidelity.showsNoObject).count
        let parts = [named.object.map { String(format: "object %.1f%%", 100 * Double(object) / n) + " (\($0.word))" },
                     named.color.map { String(format: "colour %.1f%%", 100 * Double(color) / n) + " (\($0.word))" },
                     named.background.map { String(format: "place %.1f%%", 100 * Double(background) / n) + " (\($0.word))" }]
        say(String(format: "\"%@\" on %d seeds (%d steps, guidance %.1f%@): %@; all named %.1f%%, and clean (the judge's "
            + "clean head) %.1f%%; all named with object probability ≥ 0.9 %.1f%%; no object %.1f%%; mean object probability %.3f",
            prompt, pairs.count, o.sampleSteps, guidance, rescaleNote, parts.compactMap { $0 }.joined(separator: ", "), 100 * Double(all) / n,
            100 * Double(clean) / n, 100 * Double(sure) / n, 100 * Double(none) / n,
            verdicts.map { Double($0.objectProbability) }.reduce(0, +) / n))
        say(manifold)
        return
    }
    say(String(format: "prompt fidelity on %d held-out prompts (%d steps, guidance %.1f%@): object %.1f%%, colour %.1f%%, "
        + "background %.1f%%, all three %.1f%%, all three and clean %.1f%%", pairs.count, o.sampleSteps, guidance, rescaleNote,
        100 * Double(object) / n, 100 * Double(color) / n, 100 * Double(background) / n, 100 * Double(all) / n,
        100 * Double(clean) / n))
    say(manifold)
}

func main() throws {
    guard var o = try parse(Array(CommandLine.arguments.dropFirst())) else { return }
    if let model = o.evaluate { return try evaluate(o, modelPath: model) }
    // A run continued or exported keeps the weight average it was started with.
    let checkpointPath = o.run + "/checkpoint.safetensors"
    if (o.resume || o.exportOnly), o.config.emaDecay == nil, FileManager.default.fileExists(atPath: checkpointPath),
       let ema = try SafeTensorsFile(path: checkpointPath).metadata["ema"].flatMap(Float.init) {
        o.config.emaDecay = ema
    }
    if o.trainedWeights && o.config.emaDecay == nil {
        throw CommandLineError.usage("--trained-weights goes with a run that keeps a weight average (--ema DECAY)")
    }

    let vocabulary = ToyTokenizer.learn()
    let tokenizer = try ToyTokenizer.tokenizer(vocabulary)
    guard let arch = ToyArchitecture.named(o.arch, vocabularySize: vocabulary.vocabulary.count,
                                           maxLength: ToyTokenizer.maxLength) else {
        throw CommandLineError.usage("unknown --arch \(o.arch) (one of \(ToyArchitecture.names.joined(separator: ", ")))")
    }
    if !o.resume && !o.exportOnly && o.bench == 0 { try TrainBaseFolders.checkFreshRun(o.run) }
    let trainer = try BaseTrainer(architecture: arch, vocabulary: vocabulary, tokenizer: tokenizer, config: o.config,
                                  runDirectory: URL(fileURLWithPath: o.run))
    let counts = trainer.parameterCounts
    say("train-base: arch \(arch.name) unet \(arch.unet.blockOutChannels) (\(counts.unet) weights), text "
        + "\(arch.text.numHiddenLayers)×\(arch.text.hiddenSize) (\(counts.text) weights), vocab \(vocabulary.vocabulary.count), "
        + "batch \(o.config.batchSize), lr \(o.config.learningRate), seed \(o.config.seed), steps \(o.config.steps)")

    let fm = FileManager.default
    try fm.createDirectory(atPath: o.run + "/samples", withIntermediateDirectories: true)
    /// The weights as a pipeline folder — the run's moving average when it keeps one, unless --trained-weights;
    /// `seed`: the data seed the UNet file's metadata names (the run's own).
    func export(_ path: String, seed: String? = nil) throws {
        try trainer.export(to: path, weights: o.trainedWeights ? .trained : .average,
                           metadata: ["step": String(trainer.step), "seed": seed ?? String(o.config.seed)])
    }
    /// `<out>/TRAINING.md`: how the exported weights were made (from the run's last checkpoint).
    func writeTrainingNotes(_ checkpoint: TrainingCheckpoint, arch: ToyArchitecture, counts: (unet: Int, text: Int)) throws {
        let m = { (k: String) in checkpoint.extra[k] ?? "?" }
        let wall = duration(checkpoint.state.elapsed)
        let omitted = checkpoint.extra["omit_color"] != nil || checkpoint.extra["omit_place"] != nil
        let usual = checkpoint.extra["usual_colors"] != nil
        let omission = omitted ? ", captions leave out the colour with probability \(m("omit_color")) and the place with "
            + "probability \(m("omit_place"))" + (usual ? "; an object whose colour is left out wears its usual colour" : "") : ""
        let omissionFlags = (omitted ? " --omit-color \(m("omit_color"))\(usual ? " --usual-colors" : "") --omit-place \(m("omit_place"))" : "")
            + (checkpoint.extra["init"].map { " --init \($0)" } ?? "")
            + (checkpoint.extra["ema"].map { " --ema \($0)" + (o.trainedWeights ? " --trained-weights" : "") } ?? "")
        let start = checkpoint.extra["init"].map { "fine-tuned from the model in `\($0)` (all its weights)" } ?? "from scratch"
        let text = """
            # How `\(o.out)` was trained

            `train-base` (Sources/train-base) trained this pixel-space 64×64 model \(start) on the picture
            world (`WorldDataset(seed: \(m("seed")))`, base options\(omission)), UNet and CLIP text encoder jointly, full weights.

            - command: `swift build -c release --product train-base && .build/release/train-base --arch \(arch.name) \
            --steps \(m("steps")) --batch \(m("batch")) --lr \(m("lr")) --warmup \(m("warmup")) --seed \(m("seed"))\(omissionFlags) --out \(o.out)`
            - architecture `\(arch.name)`: UNet block_out_channels \(arch.unet.blockOutChannels), layers_per_block 1,
              cross-attention at the lower levels and the middle block (\(counts.unet) weights); text encoder
              \(arch.text.numHiddenLayers) layers × \(arch.text.hiddenSize) (\(counts.text) weights); tokenizer learned from
              `Caption.corpus(.all)` by `BPETrainer` (\(vocabulary.vocabulary.count) tokens, model_max_length \(ToyTokenizer.maxLength))
            - objective: v-prediction, linear β 1e-4 → 0.02 over 1000 steps, uniform timesteps, min-SNR-5 weighted MSE,
              10 % caption dropout; AdamW (weight decay 0.01), warm-up then cosine to 10 %, gradients clipped to norm 1
            - steps done: \(trainer.step) (of \(m("steps")) planned), batch \(m("batch")), seed \(m("seed"))
            - wall time: \(wall) on the shared 2-core machine (sampling included)
            - final training loss (EMA 0.98): \(String(format: "%.4f", lossEMA(checkpoint.state.lossHistory)))
            - weights: F16 safetensors\(checkpoint.extra["ema"].map { o.trainedWeights
                ? ", the last trained weights (the run's checkpoints also keep a moving average, decay \($0))"
                : ", the moving average of the trained weights (decay \($0))" } ?? "")

            """
        try Data(text.utf8).write(to: URL(fileURLWithPath: o.out + "/TRAINING.md"), options: .atomic)
    }
    if o.resume && fm.fileExists(atPath: checkpointPath) {
        try trainer.loadCheckpoint(from: checkpointPath)
        say("resumed from \(checkpointPath) at step \(trainer.step)")
    } else if let initFrom = o.initFrom, !o.exportOnly {
        try trainer.initialize(from: StableDiffusionModel(path: initFrom), path: initFrom)
        say("weights from \(initFrom)")
    }
    if o.exportOnly {
        guard fm.fileExists(atPath: checkpointPath) else { throw CommandLineError.failure("--export: no checkpoint at \(checkpointPath)") }
        let checkpoint = try TrainingCheckpoint.read(path: checkpointPath)
        try trainer.load(checkpoint, from: checkpointPath)
        try export(o.out, seed: checkpoint.extra["seed"])
        try writeTrainingNotes(checkpoint, arch: arch, counts: counts)
        say("exported step \(trainer.step) of \(checkpointPath) to \(o.out)")
        return
    }
    if o.bench > 0 { return try bench(trainer, steps: o.bench, arch: arch) }

    var sampleSeconds = 0.0
    func samples() throws {
        let start = Date()
        try export(o.run + "/export")
        trainer.unet.eval(); trainer.textEncoder.eval()
        defer { trainer.unet.train(); trainer.textEncoder.train() }
        let images = try ToyExport.sampleBatch(StableDiffusionModel(path: o.run + "/export"),
                                               prompts: PromptSets.validation())
        let path = o.run + String(format: "/samples/step-%06d.png", trainer.step)
        try PNG.write(ToyExport.grid(images, columns: 4), to: path)
        sampleSeconds += Date().timeIntervalSince(start)
        say("samples: \(path) (\(String(format: "%.0f", Date().timeIntervalSince(start))) s)")
    }

    // The Training loop runs the steps: checkpoints every --checkpoint-every steps and on SIGINT/SIGTERM,
    // sample grids every --sample-every steps, progress every 10 steps.
    let loop = trainer.loop
    StopRequest.install()
    loop.shouldStop = { StopRequest.isRequested }
    loop.preview = { _ in
        do { try samples() } catch { say("samples failed (training goes on): \(error)") }
    }
    let clock = Date(), before = loop.state.elapsed
    loop.onEvent = { event in
        guard case .step(let r) = event, r.step % 10 == 0 || r.step <= 5 else { return }
        let elapsed = before + Date().timeIntervalSince(clock)
        say(String(format: "step %d/%d loss %.4f ema %.4f lr %.2e %.2f s/step elapsed %@ eta %@", r.step, r.total, r.loss,
                   lossEMA(loop.state.lossHistory), r.learningRate, r.secondsPerStep, duration(elapsed), duration(r.eta)))
    }
    if case .interrupted(let s) = try loop.run() {
        say("interrupted: checkpoint at step \(s) in \(checkpointPath); continue with --resume")
        return
    }
    try export(o.out)
    let final = try TrainingCheckpoint.read(path: checkpointPath)
    try writeTrainingNotes(final, arch: arch, counts: counts)
    if o.config.sampleEvery > 0 && trainer.step % o.config.sampleEvery != 0 { try samples() }
    say(String(format: "done: %d steps, loss ema %.4f, wall %@ (sampling %@); model in %@", trainer.step,
               lossEMA(final.state.lossHistory), duration(final.state.elapsed), duration(sampleSeconds), o.out))
}

/// The loss's exponential moving average (decay 0.98) over a run's history.
func lossEMA(_ history: [Float]) -> Float {
    history.dropFirst().reduce(history.first ?? 0) { 0.98 * $0 + 0.02 * $1 }
}

/// `--bench N`: N training steps (no checkpoint, no samples), then the median seconds per step.
func bench(_ trainer: BaseTrainer, steps: Int, arch: ToyArchitecture) throws {
    var times: [Double] = []
    while trainer.step < min(steps, trainer.config.steps) {
        let t0 = Date()
        let loss = try trainer.trainStep()
        times.append(Date().timeIntervalSince(t0))
        say(String(format: "step %d/%d loss %.4f %.2f s/step", trainer.step, trainer.config.steps, loss, times.last!))
    }
    let recent = times.suffix(20).sorted()
    say(String(format: "bench: arch %@ batch %d median %.2f s/step over %d steps", arch.name, trainer.config.batchSize,
               recent.isEmpty ? 0 : recent[recent.count / 2], recent.count))
}

exit(runCommand("train-base") { try main() })
