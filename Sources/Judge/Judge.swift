// Judge: reads a picture's object, colour, background, coat pattern and style, and turns readings into
// the fidelity measures of training reports (prompt fidelity, subject fidelity, prior drift).
//
// Weights live in one safetensors file (checkpoint layout, stored F16): `pipelines/judge/judge.safetensors`.
import Autograd
import Foundation
import NN
import PictureWorld
import PNGImage
import SafeTensors
import TensorCore

/// What the judge sees in one image: the most likely class of each attribute with its probability,
/// and the full distributions. `object` is nil when the most likely reading is "no object" (a bare place,
/// a noise field, a shapeless blob); colour and coat then say nothing.
public struct Verdict: Equatable, Sendable {
    public var object: ObjectKind?, objectProbability: Float
    public var color: NamedColor, colorProbability: Float
    public var background: Background, backgroundProbability: Float
    public var pattern: CoatPattern, patternProbability: Float
    public var style: RenderStyle, styleProbability: Float
    /// The probability that the picture is clean (as rendered, not blurred, noisy or compressed); `clean` is it ≥ ½.
    public var cleanProbability: Float = 1
    public var clean: Bool { cleanProbability >= 0.5 }
    /// Softmax of every head, in `JudgeHeads.all` order.
    public var probabilities: [[Float]]

    /// The most likely labels, nil when the judge sees no object.
    public var labels: SceneLabels? {
        object.map { SceneLabels(object: $0, color: color, background: background, pattern: pattern, style: style) }
    }
}

public final class Judge {
    public let network: JudgeNetwork

    /// A judge over `network` (switched to evaluation mode).
    public init(network: JudgeNetwork) {
        self.network = network
        network.eval()
    }

    /// Loads the weights at `path`.
    public convenience init(contentsOf path: String) throws {
        let network = JudgeNetwork()
        do {
            let file = try SafeTensorsFile(path: path)
            try network.load(stateDict: try file.loadAll())
        } catch {
            throw JudgeError.weights(path: path, reason: "\(error)")
        }
        self.init(network: network)
    }

    /// Writes the weights to `path` as F16 safetensors (temporary file + rename).
    public func save(to path: String, metadata: [String: String] = [:]) throws {
        var writer = SafeTensorsWriter(metadata: metadata.merging(["format": "picture-world-judge"]) { a, _ in a })
        for (key, tensor) in network.stateDict().sorted(by: { $0.key < $1.key }) {
            try writer.add(key, tensor, as: .f16)
        }
        try writer.write(to: path)
    }

    /// Judges images of any size (resized to 64×64 with a bilinear filter first).
    public func evaluate(_ images: [Image]) throws -> [Verdict] {
        var verdicts: [Verdict] = []
        try forBatches(of: images) { x in
            let logits = try withNoGrad { try network(Variable(x)).value }
            verdicts += (0..<x.shape[0]).map { verdict(logits, row: $0) }
        }
        return verdicts
    }

    /// Judges a batch given as a tensor [N, 64, 64, 3] in [-1, 1] (one forward pass).
    public func evaluate(_ images: Tensor) throws -> [Verdict] {
        let logits = try withNoGrad { try network(Variable(images)).value }
        return (0..<images.shape[0]).map { verdict(logits, row: $0) }
    }

    /// Each image's features (the penultimate layer, 128 values), for comparing pictures.
    public func features(_ images: [Image]) throws -> [[Float]] {
        var rows: [[Float]] = []
        try forBatches(of: images) { x in
            let f = try withNoGrad { try network.features(Variable(x)).value }
            let width = f.shape[1]
            f.withUnsafeBufferPointer { p in
                rows += (0..<f.shape[0]).map { Array(p[($0 * width)..<(($0 + 1) * width)]) }
            }
        }
        return rows
    }

    /// The images resized to 64×64 (bilinear) as [n, 64, 64, 3] tensors of at most 64 images.
    private func forBatches(of images: [Image], _ body: (Tensor) throws -> Void) throws {
        let side = JudgeNetwork.inputSize
        let inputs = try images.map { $0.width == side && $0.height == side ? $0 : try $0.resized(width: side, height: side, filter: .bilinear) }
        for start in stride(from: 0, to: inputs.count, by: 64) {
            let chunk = Array(inputs[start..<min(start + 64, inputs.count)])
            try body(Tensor(shape: [chunk.count, side, side, 3]) { out in
                for (n, image) in chunk.enumerated() {
                    let t = image.tensorHWC()
                    t.withUnsafeBufferPointer { p in
                        for i in 0..<p.count { out[n * p.count + i] = p[i] }
                    }
                }
            })
        }
    }

    /// Judges one image.
    public func evaluate(_ image: Image) throws -> Verdict {
        try evaluate([image])[0]
    }

    private func verdict(_ logits: Tensor, row: Int) -> Verdict {
        let k = JudgeHeads.width
        let probabilities: [[Float]] = JudgeHeads.all.map { range in
            let x = range.map { logits[flat: row * k + $0] }
            let m = x.max() ?? 0
            let e = x.map { expf($0 - m) }
            let z = e.reduce(0, +)
            return e.map { $0 / z }
        }
        func best(_ h: Int) -> (Int, Float) {
            let p = probabilities[h]
            let i = p.indices.max { p[$0] < p[$1] } ?? 0
            return (i, p[i])
        }
        let (o, po) = best(0), (c, pc) = best(1), (b, pb) = best(2), (pt, pp) = best(3), (s, ps) = best(4)
        return Verdict(object: ObjectKind(rawValue: o), objectProbability: po,
                       color: NamedColor(rawValue: c) ?? .red, colorProbability: pc,
                       background: Background(rawValue: b) ?? .grass, backgroundProbability: pb,
                       pattern: CoatPattern(rawValue: pt) ?? .plain, patternProbability: pp,
                       style: RenderStyle(rawValue: s) ?? .photo, styleProbability: ps,
                       cleanProbability: probabilities[5][1], probabilities: probabilities)
    }
}

/// Fidelity measures: each says whether one judged image passes; `rate` turns a list into a fraction.
public enum Fidelity {
    /// The image shows the object, colour and background the prompt names (attributes the prompt does
    /// not name are not checked; a prompt naming none of the three passes only vacuously).
    public static func matchesPrompt(_ prompt: String, _ verdict: Verdict) -> Bool {
        let want = Caption.parse(prompt)
        if let o = want.object, o != verdict.object { return false }
        if let c = want.color, c != verdict.color { return false }
        if let b = want.background, b != verdict.background { return false }
        return true
    }

    /// The image shows the background the prompt names (true when it names none).
    public static func matchesBackground(_ prompt: String, _ verdict: Verdict) -> Bool {
        guard let b = Caption.parse(prompt).background else { return true }
        return b == verdict.background
    }

    /// The image shows the subject: a dog with the reserved coat.
    public static func showsSubject(_ verdict: Verdict) -> Bool {
        verdict.object == .dog && verdict.pattern == .reserved
    }

    /// Prior drift for a prompt that names only the class: the image nevertheless shows the reserved coat
    /// (on some object: a picture of no object wears no coat).
    public static func showsReservedCoat(_ verdict: Verdict) -> Bool {
        verdict.object != nil && verdict.pattern == .reserved
    }

    /// The image shows no object at all (noise, a bare place, a shapeless blob).
    public static func showsNoObject(_ verdict: Verdict) -> Bool {
        verdict.object == nil
    }

    /// The fraction of `verdicts` for which `passes` holds (0 for none).
    public static func rate(_ verdicts: [Verdict], _ passes: (Verdict) -> Bool) -> Double {
        verdicts.isEmpty ? 0 : Double(verdicts.filter(passes).count) / Double(verdicts.count)
    }
}

extension Judge {
    /// Fraction of (prompt, image) pairs whose image shows the prompt's object, colour and background.
    public func promptFidelity(_ pairs: [(prompt: String, image: Image)]) throws -> Double {
        let verdicts = try evaluate(pairs.map(\.image))
        return pairs.isEmpty ? 0
            : Double(zip(pairs, verdicts).filter { Fidelity.matchesPrompt($0.0.prompt, $0.1) }.count) / Double(pairs.count)
    }

    /// Fraction of (prompt, image) pairs whose image shows the background the prompt names.
    public func backgroundFidelity(_ pairs: [(prompt: String, image: Image)]) throws -> Double {
        let verdicts = try evaluate(pairs.map(\.image))
        return pairs.isEmpty ? 0
            : Double(zip(pairs, verdicts).filter { Fidelity.matchesBackground($0.0.prompt, $0.1) }.count) / Double(pairs.count)
    }

    /// Fraction of images that show the subject (a dog with the reserved coat), for `sks dog` prompts.
    public func subjectFidelity(_ images: [Image]) throws -> Double {
        Fidelity.rate(try evaluate(images), Fidelity.showsSubject)
    }

    /// Fraction of images that show the reserved coat, for prompts that name only the class (`a dog`).
    public func priorDrift(_ images: [Image]) throws -> Double {
        Fidelity.rate(try evaluate(images), Fidelity.showsReservedCoat)
    }
}
