// JudgeNetwork: a small CNN that reads a 64×64 picture-world image and predicts every label at once.
//
//   x [N, 64, 64, 3] in [-1, 1]
//   conv1 3→24 3×3      → GroupNorm(8) → SiLU   [N, 64, 64, 24]
//   conv2 24→32 3×3 /2  → GroupNorm(8) → SiLU   [N, 32, 32, 32]
//   conv3 32→64 3×3 /2  → GroupNorm(8) → SiLU   [N, 16, 16, 64]
//   conv4 64→64 3×3 /2  → GroupNorm(8) → SiLU   [N, 8, 8, 64]
//   conv5 64→64 3×3 /2  → GroupNorm(8) → SiLU   [N, 4, 4, 64]
//   flatten → fc 1024→128 → SiLU → heads 128→33 [N, 33]
// The 33 logits are the heads of `JudgeHeads` side by side (object or none, colour, background, pattern,
// style); the loss is the sum of one softmax cross-entropy per head, over the heads a picture has a label for.
import Autograd
import Foundation
import NN
import PictureWorld
import TensorCore

/// Where each attribute's logits sit in the network's output row. The object head has one class more than
/// `ObjectKind`: `noObject`, for pictures that show no object (a bare place, a noise field, a shapeless blob).
public enum JudgeHeads {
    public static let object = 0..<(ObjectKind.allCases.count + 1)
    public static let color = object.upperBound..<(object.upperBound + NamedColor.allCases.count)
    public static let background = color.upperBound..<(color.upperBound + Background.allCases.count)
    public static let pattern = background.upperBound..<(background.upperBound + CoatPattern.allCases.count)
    public static let style = pattern.upperBound..<(pattern.upperBound + RenderStyle.allCases.count)
    /// Whether the picture is clean, as rendered (class 1), or visibly degraded — blurred, noisy or compressed (0).
    public static let clean = style.upperBound..<(style.upperBound + 2)
    public static let all = [object, color, background, pattern, style, clean]
    public static var width: Int { clean.upperBound }
    /// The object head's class for "no object".
    public static let noObject = ObjectKind.allCases.count
    /// A target that leaves its head out of the loss (what a picture does not show: the colour of no object).
    static let ignored = -1

    /// The class index of every head for `labels`, in `all` order (a rendered picture is clean).
    static func targets(_ labels: SceneLabels) -> [Int] {
        [labels.object.rawValue, labels.color.rawValue, labels.background.rawValue, labels.pattern.rawValue,
         labels.style.rawValue, 1]
    }

    /// The targets in words (`dog brown grass plain photo`, `no-object - grass - photo`; `-`: no target).
    public static func describe(targets: [Int]) -> String {
        func word<T: RawRepresentable>(_ t: Int, _ make: (Int) -> T?, _ name: (T) -> String) -> String {
            t == ignored ? "-" : make(t).map(name) ?? "?"
        }
        return [targets[0] == noObject ? "no-object" : word(targets[0], ObjectKind.init(rawValue:), \.word),
                word(targets[1], NamedColor.init(rawValue:), \.word), word(targets[2], Background.init(rawValue:), \.word),
                word(targets[3], CoatPattern.init(rawValue:), \.word), word(targets[4], RenderStyle.init(rawValue:), \.noun),
                targets[5] == ignored ? "-" : targets[5] == 1 ? "clean" : "degraded"]
            .joined(separator: " ")
    }

    /// The targets of a picture without an object: its place and style where it has them, nothing else.
    static func noObjectTargets(background: Background?, style: RenderStyle?) -> [Int] {
        [noObject, ignored, background?.rawValue ?? ignored, ignored, style?.rawValue ?? ignored, ignored]
    }
}

public final class JudgeNetwork: Module {
    /// Input side in pixels.
    public static let inputSize = 64

    let conv1 = Conv2d(inChannels: 3, outChannels: 24, kernelSize: 3, padding: 1)
    let norm1 = GroupNorm(groups: 8, channels: 24)
    let conv2 = Conv2d(inChannels: 24, outChannels: 32, kernelSize: 3, stride: 2, padding: 1)
    let norm2 = GroupNorm(groups: 8, channels: 32)
    let conv3 = Conv2d(inChannels: 32, outChannels: 64, kernelSize: 3, stride: 2, padding: 1)
    let norm3 = GroupNorm(groups: 8, channels: 64)
    let conv4 = Conv2d(inChannels: 64, outChannels: 64, kernelSize: 3, stride: 2, padding: 1)
    let norm4 = GroupNorm(groups: 8, channels: 64)
    let conv5 = Conv2d(inChannels: 64, outChannels: 64, kernelSize: 3, stride: 2, padding: 1)
    let norm5 = GroupNorm(groups: 8, channels: 64)
    let fc = Linear(inFeatures: 4 * 4 * 64, outFeatures: 128)
    let heads = Linear(inFeatures: 128, outFeatures: JudgeHeads.width)

    public override init() { super.init() }

    /// x [N, 64, 64, 3] → logits [N, 35].
    public func callAsFunction(_ x: Variable) throws -> Variable {
        try heads(try features(x))
    }

    /// x [N, 64, 64, 3] → the penultimate layer [N, 128] that the heads read: the judge's feature space, in
    /// which reports compare pictures (the role DINO and CLIP image embeddings play in the DreamBooth paper).
    public func features(_ x: Variable) throws -> Variable {
        guard x.shape.count == 4, x.shape[1] == Self.inputSize, x.shape[2] == Self.inputSize, x.shape[3] == 3 else {
            throw JudgeError.invalidInput("the judge takes [N, 64, 64, 3] images, got \(x.shape)")
        }
        var h = try norm1.silu(try conv1(x))
        h = try norm2.silu(try conv2(h))
        h = try norm3.silu(try conv3(h))
        h = try norm4.silu(try conv4(h))
        h = try norm5.silu(try conv5(h))                                   // [N, 4, 4, 64]
        h = try reshape(h, [x.shape[0], 4 * 4 * 64])
        return silu(try fc(h))
    }
}

/// Sum over heads of the softmax cross-entropy, divided by the row count: logits [N, K], one target class
/// per head per row, or `JudgeHeads.ignored` to leave that head of that row out.
/// Its VJP is (softmax − one-hot)/N within each head that has a target.
func multiHeadCrossEntropy(_ logits: Variable, targets: [[Int]], heads: [Range<Int>]) throws -> Variable {
    let n = logits.shape[0], k = logits.shape[1]
    guard targets.count == n, targets.allSatisfy({ $0.count == heads.count }) else {
        throw JudgeError.invalidInput("cross-entropy: \(targets.count) target rows for \(n) logit rows")
    }
    for (row, t) in targets.enumerated() {
        for (h, range) in heads.enumerated() where t[h] != JudgeHeads.ignored && !(0..<range.count).contains(t[h]) {
            throw JudgeError.invalidInput("cross-entropy: target \(t[h]) of head \(h) in row \(row) is not in 0..<\(range.count)")
        }
    }
    var grad = Tensor(zeros: [n, k])
    var loss: Double = 0
    logits.value.withUnsafeBufferPointer { x in
        grad.withUnsafeMutableBufferPointer { g in
            for row in 0..<n {
                for (h, range) in heads.enumerated() where targets[row][h] != JudgeHeads.ignored {
                    let base = row * k
                    let m = range.map { x[base + $0] }.max() ?? 0
                    var z: Float = 0
                    for j in range { z += expf(x[base + j] - m) }
                    let target = range.lowerBound + targets[row][h]
                    loss += Double(m + logf(z) - x[base + target])
                    for j in range { g[base + j] = expf(x[base + j] - m) / z / Float(n) }
                    g[base + target] -= 1 / Float(n)
                }
            }
        }
    }
    return Variable.result(Tensor(scalar: Float(loss / Double(n))), of: "multiHeadCrossEntropy", inputs: [logits]) { dOut in
        [Elementwise.scale(grad, by: dOut.item)]
    }
}

/// Errors of the judge.
public enum JudgeError: Error, CustomStringConvertible, Equatable {
    case invalidInput(String)
    case weights(path: String, reason: String)

    public var description: String {
        switch self {
        case .invalidInput(let m): return m
        case .weights(let path, let reason): return "judge weights \(path): \(reason)"
        }
    }
}
