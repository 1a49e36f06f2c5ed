// The judge's fidelity report on a subject adapter: fixed seeds, the same prompts with the adapter off
// (weight 0, "before") and on (weight 1, "after"), in batches whose images carry their own adapter weights,
// so the base runs once per batch. Measures subject fidelity and background fidelity on `a photo of sks dog
// …` prompts and prior drift (the subject's coat on `a photo of a dog …`), and, as the DreamBooth paper
// measures (in the judge's feature space): similarity to the instance pictures (judge-I, DINO's role), prior
// preservation (feature cosine and pixel SSIM of the class pictures before vs after; PRES) and diversity
// (DIV); writes report.json and a grid with labelled rows.
import Adapters
import Foundation
import Judge
import PNGImage
import Pipeline
import PictureWorld
import Schedulers
import TensorCore

/// Settings of a fidelity report: seeds 0..<count, and the sampler of train-style's validation images.
public struct FidelityReportSettings: Codable, Equatable, Sendable {
    /// Images per prompt set and adapter state; image i uses seed i and prompt i (cycling through the set).
    public var count: Int = 16
    public var steps: Int = 20
    public var guidanceScale: Double = 7.5
    public var sampler: SamplerKind = .dpmpp2m
    /// Image size (nil: the model's default).
    public var size: Int?
    /// Requests per denoising loop.
    public var batchSize: Int = 16

    public init() {}

    /// The pictures of each (prompts, adapter weight) set in order, `count` per set: picture i of a set with prompt
    /// i (cycling through the set's prompts) and seed i, the adapter `name` at that weight, generated in batches of
    /// `batchSize` that mix sets (the base runs once per batch).
    func pictures(_ sets: [(prompts: [String], weight: Float)], adapter name: String, pipeline: TextToImage, label: String,
                  progress: ((String) -> Void)?) throws -> [Image] {
        var requests: [BatchRequest] = []
        for (prompts, weight) in sets {
            for i in 0..<count {
                let p = GenerationParameters(prompt: prompts[i % prompts.count], steps: steps, guidanceScale: guidanceScale,
                                             sampler: sampler, seed: UInt64(i), width: size, height: size)
                requests.append(BatchRequest(parameters: p, adapterWeights: [name: AdapterWeights(unet: weight, textEncoder: weight)]))
            }
        }
        var images: [Image] = []
        for start in stride(from: 0, to: requests.count, by: batchSize) {
            let batch = Array(requests[start..<min(start + batchSize, requests.count)])
            images += try pipeline.decode(pipeline.denoise(batch: batch))
            progress?("\(label): \(images.count)/\(requests.count) images")
        }
        return images
    }
}

/// What the judge saw: fractions in [0, 1] before (adapter weight 0) and after (weight 1).
public struct FidelityReport: Codable, Equatable, Sendable {
    public struct Measure: Codable, Equatable, Sendable {
        public var before: Double
        public var after: Double
    }

    public var adapter: String
    public var token: String
    public var className: String
    /// Whether training used prior preservation (from the adapter's metadata); nil when it does not say.
    public var priorPreservation: Bool?
    public var settings: FidelityReportSettings
    public var subjectPrompts: [String]
    public var priorPrompts: [String]
    /// `a photo of sks dog …` images showing a dog with the reserved coat.
    public var subjectFidelity: Measure
    /// Its two parts: `a photo of sks dog …` images showing a dog (any coat), and the reserved coat (any object).
    public var subjectObject: Measure
    public var subjectCoat: Measure
    /// `a photo of sks dog …` images showing the background the prompt names.
    public var backgroundFidelity: Measure
    /// `a photo of a dog …` images showing the reserved coat.
    public var priorDrift: Measure
    /// `a photo of a dog …` images showing a dog (any coat): whether the class itself survives the adapter.
    public var priorObject: Measure
    /// Pictures the judge's clean head reads as clean (not blurred, noisy or compressed): the damage a reader's
    /// "a dog" misses. `priorCleanObject`: a dog, and clean.
    public var subjectClean: Measure
    public var priorCleanObject: Measure
    /// judge-I: mean feature cosine of the `a photo of sks dog …` pictures with the instance pictures (nil when
    /// the report had no instance pictures). DreamBooth's DINO / CLIP-I role: higher is closer to the subject.
    public var subjectSimilarity: Measure?
    /// PRES: mean feature cosine of the `a photo of a dog …` pictures with the instance pictures; the class
    /// collapsing onto the subject raises it after training (lower is better preserved).
    public var pres: Measure?
    /// Prior preservation, class prompts, same seed before and after: mean feature cosine and mean pixel SSIM
    /// (1 = untouched).
    public var priorFeatureCosine: Double
    public var priorSSIM: Double
    /// DIV: mean feature distance (1 − cosine) between pictures of one prompt, subject and class prompts.
    public var subjectDiversity: Measure
    public var priorDiversity: Measure
    public var seconds: Double

    /// The report's images: each set's `count` images before, then after.
    public struct Images {
        public var subjectBefore: [Image], subjectAfter: [Image], priorBefore: [Image], priorAfter: [Image]
    }

    /// A compact table.
    public var table: String {
        func row(_ name: String, _ m: Measure, _ note: String = "") -> String {
            name.padding(toLength: 22, withPad: " ", startingAt: 0)
                + String(format: "%6.1f%%  %6.1f%%", 100 * m.before, 100 * m.after) + note
        }
        func value(_ name: String, _ m: Measure?, _ note: String = "") -> String? {
            m.map { name.padding(toLength: 22, withPad: " ", startingAt: 0) + String(format: "%7.3f  %7.3f", $0.before, $0.after) + note }
        }
        func single(_ name: String, _ v: Double, _ note: String) -> String {
            name.padding(toLength: 22, withPad: " ", startingAt: 0) + "         " + String(format: "%7.3f", v) + note
        }
        let prior = priorPreservation.map { $0 ? "  (with prior preservation)" : "  (without prior preservation)" } ?? ""
        let lines: [String?] = [
            "fidelity report: \(adapter) (\"\(token) \(className)\"), \(settings.count) seeds, \(settings.sampler.rawValue) "
                + "\(settings.steps) steps, CFG \(settings.guidanceScale), \(String(format: "%.0f", seconds)) s",
            "measure".padding(toLength: 22, withPad: " ", startingAt: 0) + "  before    after   goal",
            row("subject fidelity", subjectFidelity, "   ≥ 95 % after, ≤ 5 % before"),
            row("  shows a \(className)", subjectObject),
            row("  shows the coat", subjectCoat),
            row("background fidelity", backgroundFidelity, "   ≥ 95 % after (is the prompt's place kept?)"),
            value("judge-I (subject)", subjectSimilarity, "   higher: closer to the instance pictures"),
            row("prior drift", priorDrift, prior),
            row("  prior shows a \(className)", priorObject, "   ≥ 95 % after"),
            row("  a clean \(className)", priorCleanObject, "   ≥ 95 % after (the judge's clean head)"),
            row("subject pictures clean", subjectClean),
            single("prior feature cosine", priorFeatureCosine, "   ≥ 0.95 (class prompts, same seeds, before vs after)"),
            single("prior SSIM", priorSSIM, "   ≥ 0.80"),
            value("PRES", pres, "   lower: the class keeps its own look"),
            value("DIV (subject)", subjectDiversity, "   higher: more varied pictures per prompt"),
            value("DIV (prior)", priorDiversity),
        ]
        return lines.compactMap { $0 }.joined(separator: "\n")
    }

    /// Runs the report for the adapter file at `adapterPath` on `model` (adapters are loaded into `model`:
    /// pass a model no other adapters act on). `token` and `className` default to the adapter's metadata.
    /// `instances` are the subject's own pictures (the training images) for judge-I and PRES (empty: left out).
    public static func run(model: StableDiffusionModel, adapterPath: String, judge: Judge,
                           settings: FidelityReportSettings = FidelityReportSettings(), token: String? = nil,
                           className: String? = nil, priorPreservation: Bool? = nil, instances: [Image] = [],
                           progress: ((String) -> Void)? = nil) throws -> (report: FidelityReport, images: Images) {
        let clock = Date()
        let file = try LoRAFile(contentsOf: adapterPath)
        let trigger = file.triggerPhrase?.split(separator: " ").map(String.init) ?? []
        guard let token = token ?? trigger.first else {
            throw CommandLineError.failure("\(adapterPath) names no trigger word; pass --token WORD")
        }
        guard let className = className ?? file.metadata["ss_class"] ?? (trigger.count == 2 ? trigger[1] : nil) else {
            throw CommandLineError.failure("\(adapterPath) names no class; pass --class NOUN")
        }
        let prior = priorPreservation ?? (file.metadata["ss_training_comment"] == nil ? nil : file.metadata["ss_class_prompt"] != nil)
        guard settings.count >= 1, settings.batchSize >= 1 else {
            throw CommandLineError.usage("the report needs at least one seed and a batch of at least one")
        }
        let name = "report"
        let set = AdapterSet(unet: model.unet, textEncoder: model.textEncoder, unetAliases: model.unetLDMModuleNames)
        try set.load(file, name: name, unetWeight: 0, textEncoderWeight: 0)
        let pipeline = TextToImage(model: model, adapters: set)
        let subjectPrompts = PromptSets.subject(token: token, className: className)
        let priorPrompts = PromptSets.prior(className: className)

        // Subject before, subject after, prior before, prior after; image i with seed i.
        let images = try settings.pictures([(subjectPrompts, 0), (subjectPrompts, 1), (priorPrompts, 0), (priorPrompts, 1)],
                                           adapter: name, pipeline: pipeline, label: "fidelity report", progress: progress)
        let n = settings.count
        let parts = Images(subjectBefore: Array(images[0..<n]), subjectAfter: Array(images[n..<2 * n]),
                           priorBefore: Array(images[2 * n..<3 * n]), priorAfter: Array(images[3 * n..<4 * n]))
        let subjectPairs = (0..<n).map { subjectPrompts[$0 % subjectPrompts.count] }
        func pairs(_ images: [Image]) -> [(prompt: String, image: Image)] { zip(subjectPairs, images).map { ($0, $1) } }
        let subjectVerdicts = (before: try judge.evaluate(parts.subjectBefore), after: try judge.evaluate(parts.subjectAfter))
        func measure(_ passes: (Verdict) -> Bool) -> Measure {
            Measure(before: Fidelity.rate(subjectVerdicts.before, passes), after: Fidelity.rate(subjectVerdicts.after, passes))
        }
        let object = Caption.parse(subjectPrompts[0]).object
        let priorVerdicts = (before: try judge.evaluate(parts.priorBefore), after: try judge.evaluate(parts.priorAfter))
        let features = (subjectBefore: try judge.features(parts.subjectBefore), subjectAfter: try judge.features(parts.subjectAfter),
                        priorBefore: try judge.features(parts.priorBefore), priorAfter: try judge.features(parts.priorAfter))
        let instanceFeatures = try judge.features(instances)
        func similarity(_ before: [[Float]], _ after: [[Float]]) -> Measure? {
            instances.isEmpty ? nil : Measure(before: PictureMeasures.meanCrossCosine(before, instanceFeatures),
                                              after: PictureMeasures.meanCrossCosine(after, instanceFeatures))
        }
        func diversity(_ before: [[Float]], _ after: [[Float]], _ prompts: [String]) -> Measure {
            let groups = (0..<n).map { prompts[$0 % prompts.count] }
            return Measure(before: PictureMeasures.diversity(before, groups: groups),
                           after: PictureMeasures.diversity(after, groups: groups))
        }
        let report = FidelityReport(
            adapter: adapterPath, token: token, className: className, priorPreservation: prior, settings: settings,
            subjectPrompts: subjectPrompts, priorPrompts: priorPrompts,
            subjectFidelity: measure(Fidelity.showsSubject),
            subjectObject: measure { $0.object == object }, subjectCoat: measure(Fidelity.showsReservedCoat),
            backgroundFidelity: Measure(before: try judge.backgroundFidelity(pairs(parts.subjectBefore)),
                                        after: try judge.backgroundFidelity(pairs(parts.subjectAfter))),
            priorDrift: Measure(before: try judge.priorDrift(parts.priorBefore), after: try judge.priorDrift(parts.priorAfter)),
            priorObject: Measure(before: Fidelity.rate(priorVerdicts.before) { $0.object == object },
                                 after: Fidelity.rate(priorVerdicts.after) { $0.object == object }),
            subjectClean: measure(\.clean),
            priorCleanObject: Measure(before: Fidelity.rate(priorVerdicts.before) { $0.object == object && $0.clean },
                                      after: Fidelity.rate(priorVerdicts.after) { $0.object == object && $0.clean }),
            subjectSimilarity: similarity(features.subjectBefore, features.subjectAfter),
            pres: similarity(features.priorBefore, features.priorAfter),
            priorFeatureCosine: PictureMeasures.meanPairedCosine(features.priorBefore, features.priorAfter),
            priorSSIM: try PictureMeasures.meanSSIM(parts.priorBefore, parts.priorAfter),
            subjectDiversity: diversity(features.subjectBefore, features.subjectAfter, subjectPrompts),
            priorDiversity: diversity(features.priorBefore, features.priorAfter, priorPrompts),
            seconds: Date().timeIntervalSince(clock))
        return (report, parts)
    }

    /// Writes `report.json` and `report.png` (rows, labelled: subject before, subject after, prior before,
    /// prior after; one column per seed, prompt i with seed i) into `folder`.
    public func write(to folder: URL, images: Images) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: folder.appendingPathComponent("report.json"), options: .atomic)
        let all = images.subjectBefore + images.subjectAfter + images.priorBefore + images.priorAfter
        let subject = "\(token) \(className)", prior = "a \(className)"
        let labels = ["\(subject) before", "\(subject) after", "\(prior) before", "\(prior) after"]
        let title = "a photo of \(token) \(className) ... / a photo of a \(className) ...: seeds 0-\(settings.count - 1)"
        try PNG.write(try Image.grid(all, columns: settings.count, gap: 2, rowLabels: labels, title: title),
                      to: folder.appendingPathComponent("report.png").path)
    }
}
