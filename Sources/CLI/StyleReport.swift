// The judge's report on a style adapter: held-out picture-world prompts with the adapter's trigger phrase
// (`a red car on the beach in the style of pixelart`), fixed seeds, the adapter off ("before", weight 0) and on
// ("after", weight 1) in batches that mix both. Does the picture show the style (the style the instance pictures
// show, read the same way), and does it keep the prompt's content (object and place, and colour unless the style
// takes colour away)? Writes style-report.json and a grid with labelled rows.
import Adapters
import Foundation
import Judge
import PNGImage
import Pipeline
import PictureWorld

/// What a style report saw: fractions in [0, 1] before (adapter weight 0) and after (weight 1).
public struct StyleReport: Codable, Equatable, Sendable {
    /// How a picture is read as showing the style.
    public enum Reading: Codable, Equatable, Sendable {
        /// A sepia print: nearly all pixels on the sepia ramp (`PictureMeasures.isSepia`); colour is gone.
        case sepia
        /// The judge's style head names this render style.
        case judged(RenderStyle)

        public var name: String {
            switch self {
            case .sepia: return "sepia print"
            case .judged(let style): return style.noun
            }
        }

        /// Whether the style keeps the objects' colours (so content includes colour).
        public var keepsColor: Bool { self != .sepia }

        func reads(_ image: Image, _ verdict: Verdict) -> Bool {
            switch self {
            case .sepia: return PictureMeasures.isSepia(image)
            case .judged(let style): return verdict.style == style
            }
        }

        /// The style the instance pictures show: sepia when most are sepia prints, else the judge's most
        /// frequent style reading of them.
        static func of(_ instances: [Image], verdicts: [Verdict]) -> Reading {
            if instances.filter({ PictureMeasures.isSepia($0) }).count * 2 > instances.count { return .sepia }
            let counts = Dictionary(grouping: verdicts.map(\.style), by: { $0 }).mapValues(\.count)
            return .judged(counts.max { ($0.value, -$0.key.rawValue) < ($1.value, -$1.key.rawValue) }?.key ?? .photo)
        }
    }

    public var adapter: String
    public var token: String
    public var reading: Reading
    /// Share of the instance pictures that read as the style (how well the reading fits the training pictures).
    public var instancesRead: Double
    public var settings: FidelityReportSettings
    public var prompts: [String]
    /// Pictures that read as the style.
    public var styleRead: FidelityReport.Measure
    /// Pictures that show the prompt's object and place (and colour, when the style keeps colour).
    public var contentKept: FidelityReport.Measure
    /// Both at once.
    public var both: FidelityReport.Measure
    /// Mean feature cosine with the instance pictures (judge-I, as the subject report's).
    public var styleSimilarity: FidelityReport.Measure
    public var seconds: Double

    /// The trigger phrase of a style adapter (`in the style of W`) gives its token; nil for other adapters.
    public static func styleToken(of file: LoRAFile) -> String? {
        guard let phrase = file.triggerPhrase, phrase.hasPrefix("in the style of ") else { return nil }
        let token = phrase.dropFirst("in the style of ".count).trimmingCharacters(in: .whitespaces)
        return token.isEmpty ? nil : token
    }

    /// The held-out prompts with the style's trigger phrase: `PromptSets.heldout` labels in the phrasing the
    /// style examples use (`a red car on the beach`), then ` in the style of TOKEN`.
    public static func prompts(token: String, count: Int) -> [(prompt: String, labels: SceneLabels)] {
        PromptSets.heldout(count: count).map { (Caption.make($0.labels, phrasing: 1) + " in the style of \(token)", $0.labels) }
    }

    /// A compact table.
    public var table: String {
        func row(_ name: String, _ m: FidelityReport.Measure, _ note: String = "") -> String {
            name.padding(toLength: 22, withPad: " ", startingAt: 0) + String(format: "%6.1f%%  %6.1f%%", 100 * m.before, 100 * m.after) + note
        }
        let content = reading.keepsColor ? "object, colour, place" : "object, place"
        return [
            "style report: \(adapter) (\"in the style of \(token)\": \(reading.name), read in "
                + String(format: "%.0f%%", 100 * instancesRead) + " of the instance pictures), \(settings.count) seeds, "
                + "\(settings.sampler.rawValue) \(settings.steps) steps, CFG \(settings.guidanceScale), \(String(format: "%.0f", seconds)) s",
            "measure".padding(toLength: 22, withPad: " ", startingAt: 0) + "  before    after   goal",
            row("reads the style", styleRead, "   ≥ 90 % after"),
            row("content kept", contentKept, "   ≥ 90 % after (\(content))"),
            row("both", both),
            "judge-I (style)".padding(toLength: 22, withPad: " ", startingAt: 0)
                + String(format: "%7.3f  %7.3f", styleSimilarity.before, styleSimilarity.after) + "   higher: closer to the instance pictures",
        ].joined(separator: "\n")
    }

    /// Runs the report for the style adapter at `adapterPath` on `model` (adapters are loaded into `model`: pass a
    /// model no other adapters act on). `instances`: the style's own pictures (at least one), which say what the
    /// style is; `token` defaults to the adapter's trigger phrase.
    public static func run(model: StableDiffusionModel, adapterPath: String, judge: Judge, instances: [Image],
                           settings: FidelityReportSettings = FidelityReportSettings(), token: String? = nil,
                           progress: ((String) -> Void)? = nil) throws -> (report: StyleReport, before: [Image], after: [Image]) {
        let clock = Date()
        let file = try LoRAFile(contentsOf: adapterPath)
        guard let token = token ?? styleToken(of: file) else {
            throw CommandLineError.failure("\(adapterPath) is not a style adapter (its trigger phrase is not \"in the style of …\"); pass --token WORD")
        }
        guard !instances.isEmpty else {
            throw CommandLineError.usage("the style report needs the style's pictures (IMAGES_DIR) to know what the style looks like")
        }
        guard settings.count >= 1, settings.batchSize >= 1 else {
            throw CommandLineError.usage("the report needs at least one seed and a batch of at least one")
        }
        let instanceVerdicts = try judge.evaluate(instances)
        let reading = Reading.of(instances, verdicts: instanceVerdicts)
        let name = "style"
        let set = AdapterSet(unet: model.unet, textEncoder: model.textEncoder, unetAliases: model.unetLDMModuleNames)
        try set.load(file, name: name, unetWeight: 0, textEncoderWeight: 0)
        let pipeline = TextToImage(model: model, adapters: set)
        let prompts = Self.prompts(token: token, count: settings.count)
        let images = try settings.pictures([(prompts.map(\.prompt), 0), (prompts.map(\.prompt), 1)], adapter: name,
                                           pipeline: pipeline, label: "style report", progress: progress)
        let n = settings.count
        let before = Array(images[0..<n]), after = Array(images[n..<2 * n])
        let verdicts = (before: try judge.evaluate(before), after: try judge.evaluate(after))
        func content(_ v: Verdict, _ l: SceneLabels) -> Bool {
            v.object == l.object && v.background == l.background && (!reading.keepsColor || v.color == l.color)
        }
        func rate(_ images: [Image], _ verdicts: [Verdict], _ passes: (Image, Verdict, SceneLabels) -> Bool) -> Double {
            Double((0..<n).filter { passes(images[$0], verdicts[$0], prompts[$0].labels) }.count) / Double(n)
        }
        func measure(_ passes: (Image, Verdict, SceneLabels) -> Bool) -> FidelityReport.Measure {
            FidelityReport.Measure(before: rate(before, verdicts.before, passes), after: rate(after, verdicts.after, passes))
        }
        let instanceFeatures = try judge.features(instances)
        let report = StyleReport(
            adapter: adapterPath, token: token, reading: reading,
            instancesRead: Double(zip(instances, instanceVerdicts).filter { reading.reads($0.0, $0.1) }.count) / Double(instances.count),
            settings: settings, prompts: prompts.map(\.prompt),
            styleRead: measure { image, verdict, _ in reading.reads(image, verdict) },
            contentKept: measure { _, verdict, labels in content(verdict, labels) },
            both: measure { image, verdict, labels in reading.reads(image, verdict) && content(verdict, labels) },
            styleSimilarity: FidelityReport.Measure(
                before: PictureMeasures.meanCrossCosine(try judge.features(before), instanceFeatures),
                after: PictureMeasures.meanCrossCosine(try judge.features(after), instanceFeatures)),
            seconds: Date().timeIntervalSince(clock))
        return (report, before, after)
    }

    /// Writes `style-report.json` and `style-report.png` (two labelled rows, before and after; one column per
    /// seed, prompt i with seed i) into `folder`.
    public func write(to folder: URL, before: [Image], after: [Image]) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(self).write(to: folder.appendingPathComponent("style-report.json"), options: .atomic)
        let title = "... in the style of \(token): held-out prompts, seeds 0-\(settings.count - 1)"
        try PNG.write(try Image.grid(before + after, columns: settings.count, gap: 2,
                                     rowLabels: ["\(token) before", "\(token) after"], title: title),
                      to: folder.appendingPathComponent("style-report.png").path)
    }
}
