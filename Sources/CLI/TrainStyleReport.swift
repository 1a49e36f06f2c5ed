// train-style's fidelity report: its options, when it runs at the end of a run (judge weights present and a
// picture-world base: pixel space, as the embedded model), and `train-style --report ADAPTER` alone.
import Adapters
import Foundation
import Judge
import PNGImage
import Pipeline
import Training

/// The report options of a `train-style` command line.
public struct ReportOptions: Equatable {
    public static let defaultJudge = "pipelines/judge/judge.safetensors"
    public var judge: String
    public var settings = FidelityReportSettings()
    /// Whether --judge was given (then a missing file is an error, not a skipped report).
    public var judgeGiven: Bool
    /// Whether --report-cfg was given; otherwise the pictures use the model's guidance scale
    /// (`StableDiffusionModel.defaultGuidance`: the folder's recommended one, else 7.5).
    public var guidanceGiven = false

    init(_ a: ParsedArguments) throws {
        judge = a.string("judge") ?? Self.defaultJudge
        judgeGiven = a.has("judge")
        settings.count = try a.int("report-count", in: 1...10_000) ?? settings.count
        if let g = try a.double("report-cfg") {
            guard g.isFinite, g >= 0 else { throw CommandLineError.usage("--report-cfg takes a guidance scale ≥ 0, got \(g)") }
            settings.guidanceScale = g
            guidanceGiven = true
        }
    }

    /// The settings for pictures of `model`: the model's guidance scale unless --report-cfg gave one.
    func settings(for model: StableDiffusionModel) -> FidelityReportSettings {
        var s = settings
        if !guidanceGiven { s.guidanceScale = model.defaultGuidance }
        return s
    }

    /// Why the report cannot run on `model` (nil: it can).
    func obstacle(model: StableDiffusionModel) -> String? {
        if !FileManager.default.fileExists(atPath: judge) { return "no judge weights at \(judge)" }
        if model.isLatent { return "the base model is not a picture-world model (it has a VAE)" }
        return nil
    }

    /// Runs the report on a fresh copy of the model at `pipeline`, prints its table and writes it into `folder`.
    /// `instances`: the subject's pictures, for the measures that compare with them (judge-I, PRES).
    func run(pipeline: String, adapter: String, folder: URL, token: String? = nil, className: String? = nil,
             priorPreservation: Bool? = nil, instances: [Image] = [], console: TrainingConsole) throws {
        let model = try StableDiffusionModel(path: pipeline)
        let judge = try Judge(contentsOf: judge)
        let (report, images) = try FidelityReport.run(model: model, adapterPath: adapter, judge: judge, settings: settings(for: model),
                                                      token: token, className: className, priorPreservation: priorPreservation,
                                                      instances: instances) { console.note($0) }
        try report.write(to: folder, images: images)
        print(report.table)
        console.note("report written to \(folder.appendingPathComponent("report.json").path) and report.png")
    }

    /// The style report (`StyleReport`) of a style adapter on a fresh copy of the model at `pipeline`: prints its
    /// table and writes it into `folder`. `instances`: the style's pictures.
    func runStyle(pipeline: String, adapter: String, folder: URL, token: String? = nil, instances: [Image],
                  console: TrainingConsole) throws {
        let model = try StableDiffusionModel(path: pipeline)
        let judge = try Judge(contentsOf: judge)
        let (report, before, after) = try StyleReport.run(model: model, adapterPath: adapter, judge: judge, instances: instances,
                                                          settings: settings(for: model), token: token) { console.note($0) }
        try report.write(to: folder, before: before, after: after)
        print(report.table)
        console.note("style report written to \(folder.appendingPathComponent("style-report.json").path) and style-report.png")
    }
}

extension TrainStyleCommand {
    /// `train-style --report ADAPTER [IMAGES_DIR] [--pipeline DIR] [--judge FILE] [--report-count N] [--token W]
    /// [--class N] [--out DIR]`; IMAGES_DIR (the subject's pictures) adds the measures that compare with them. A style
    /// adapter (trigger phrase `in the style of W`, or --style) gets the style report, which needs IMAGES_DIR.
    static func runReport(_ arguments: [String]) throws -> Int32 {
        let a = try ParsedArguments(arguments, options: TrainStyleArguments.options, flagNames: TrainStyleArguments.flags)
        guard let adapter = a.string("report"), a.positionals.count <= 1 else {
            throw CommandLineError.usage("train-style --report ADAPTER takes at most one IMAGES_DIR (see --help)")
        }
        let instances = try a.positionals.first.map {
            try DreamBoothDataset(directory: URL(fileURLWithPath: $0), prompt: "", resolution: JudgeNetwork.inputSize).examples.map(\.image)
        } ?? []
        guard FileManager.default.fileExists(atPath: adapter) else { throw CommandLineError.failure("adapter \(adapter) does not exist") }
        let options = try ReportOptions(a)
        let pipeline = a.string("pipeline") ?? "pipelines/toy"
        guard FileManager.default.fileExists(atPath: pipeline) else {
            throw CommandLineError.failure("base model \(pipeline) does not exist; pass --pipeline DIR (a diffusers folder)")
        }
        guard FileManager.default.fileExists(atPath: options.judge) else {
            throw CommandLineError.failure("no judge weights at \(options.judge); pass --judge FILE")
        }
        let name = ((adapter as NSString).lastPathComponent as NSString).deletingPathExtension
        let folder = URL(fileURLWithPath: a.string("out") ?? "outputs").appendingPathComponent("reports/\(name)")
        let styleToken = StyleReport.styleToken(of: try LoRAFile(contentsOf: adapter))
        if a.has("style") || styleToken != nil {
            try options.runStyle(pipeline: pipeline, adapter: adapter, folder: folder, token: a.string("token"),
                                 instances: instances, console: TrainingConsole())
            return 0
        }
        try options.run(pipeline: pipeline, adapter: adapter, folder: folder, token: a.string("token"),
                        className: a.string("class"), instances: instances, console: TrainingConsole())
        return 0
    }
}
