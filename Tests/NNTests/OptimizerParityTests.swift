// Prodigy against prodigyopt.Prodigy and Adafactor against transformers' Adafactor: the same gradients fed
// step by step, the parameters compared after every step (goldens: Tests/Reference/make_optimizer_goldens.py).
// Also: saving the state mid-run and restoring it into a fresh optimiser continues bit for bit.
import Autograd
import Foundation
import NN
import TensorCore
import XCTest

private struct Golden: Decodable {
    struct Entry: Decodable { var shape: [Int]; var values: [Float] }
    struct Group: Decodable { var names: [String]; var scale: Float }
    struct Step: Decodable { var lr: Double?; var grads: [String: [Float]]; var params: [String: [Float]]; var d: Double? }
    var name: String
    var groups: [Group]
    var initial: [String: Entry]
    var steps: [Step]
    var settings: [String: Setting]

    enum Setting: Decodable {
        case number(Double), flag(Bool)
        init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let b = try? c.decode(Bool.self) { self = .flag(b) } else { self = .number(try c.decode(Double.self)) }
        }
        var number: Double? { if case .number(let x) = self { return x } else { return nil } }
        var flag: Bool? { if case .flag(let b) = self { return b } else { return nil } }
    }

    func parameters() throws -> (groups: [ParameterGroup], all: [String: Variable]) {
        var all: [String: Variable] = [:]
        for (name, e) in initial { all[name] = Variable(try Tensor(shape: e.shape, scalars: e.values), requiresGrad: true) }
        return (groups.map { g in ParameterGroup(parameters: g.names.map { ($0, all[$0]!) }, learningRateScale: g.scale) }, all)
    }
}

private struct Goldens: Decodable { var prodigy: [Golden]; var adafactor: [Golden] }

final class OptimizerParityTests: XCTestCase {
    private func goldens() throws -> Goldens {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/optimizer_goldens", withExtension: "json"))
        return try JSONDecoder().decode(Goldens.self, from: Data(contentsOf: url))
    }

    private func prodigySettings(_ s: [String: Golden.Setting]) -> ProdigySettings {
        var p = ProdigySettings()
        if let x = s["weight_decay"]?.number { p.weightDecay = x }
        if let x = s["decouple"]?.flag { p.decouple = x }
        if let x = s["use_bias_correction"]?.flag { p.useBiasCorrection = x }
        if let x = s["safeguard_warmup"]?.flag { p.safeguardWarmup = x }
        if let x = s["d_coef"]?.number { p.dCoef = x }
        if let x = s["d0"]?.number { p.d0 = x }
        if let x = s["beta1"]?.number { p.beta1 = x }
        if let x = s["beta2"]?.number { p.beta2 = x }
        if let x = s["beta3"]?.number { p.beta3 = x }
        if let x = s["eps"]?.number { p.eps = x }
        return p
    }

    private func adafactorSettings(_ s: [String: Golden.Setting]) -> AdafactorSettings {
        var a = AdafactorSettings()
        if let x = s["relative_step"]?.flag { a.relativeStep = x }
        if let x = s["scale_parameter"]?.flag { a.scaleParameter = x }
        if let x = s["warmup_init"]?.flag { a.warmupInit = x }
        if let x = s["beta1"]?.number { a.beta1 = x }
        if let x = s["weight_decay"]?.number { a.weightDecay = x }
        if let x = s["clip_threshold"]?.number { a.clipThreshold = x }
        if let x = s["decay_rate"]?.number { a.decayRate = x }
        return a
    }

    /// Feeds the golden gradients; checks every parameter after every step (relative 1e-5 of the parameter's
    /// largest magnitude, over the whole run), and Prodigy's d.
    private func replay(_ golden: Golden, make: ([ParameterGroup]) throws -> Optimizer) throws {
        let (groups, all) = try golden.parameters()
        let optimizer = try make(groups)
        var worst: Float = 0
        defer { print(String(format: "%@: %d steps, max |error| / parameter scale %.2e", golden.name, golden.steps.count, worst)) }
        for (t, step) in golden.steps.enumerated() {
            for (name, g) in step.grads { all[name]!.grad = try Tensor(shape: all[name]!.shape, scalars: g) }
            optimizer.update(learningRate: Float(step.lr ?? 0))
            for (name, expected) in step.params {
                let got = all[name]!.value.scalars
                let scale = max(expected.map { abs($0) }.max() ?? 0, 1e-3)
                for (a, e) in zip(got, expected) { worst = max(worst, abs(a - e) / scale) }
                for (i, (a, e)) in zip(got, expected).enumerated() where abs(a - e) > 1e-5 * scale {
                    XCTFail("\(golden.name) step \(t + 1) \(name)[\(i)]: \(a), expected \(e)")
                    return
                }
            }
            if let d = step.d, let prodigy = optimizer as? Prodigy {
                XCTAssertEqual(prodigy.d, d, accuracy: 1e-5 * d, "\(golden.name) step \(t + 1): d")
            }
        }
    }

    func testProdigyMatchesProdigyopt() throws {
        let cases = try goldens().prodigy
        XCTAssertEqual(cases.count, 4)
        for golden in cases {
            try replay(golden) { try Prodigy(groups: $0, settings: prodigySettings(golden.settings)) }
        }
    }

    func testAdafactorMatchesTransformers() throws {
        let cases = try goldens().adafactor
        XCTAssertEqual(cases.count, 4)
        for golden in cases {
            try replay(golden) { try Adafactor(groups: $0, settings: adafactorSettings(golden.settings)) }
        }
    }

    /// Ten steps straight vs five, save, restore into a new optimiser (over the same parameter values), five more.
    func testSavedStateContinuesBitForBit() throws {
        let goldens = try goldens()
        let runs: [(Golden, ([ParameterGroup]) throws -> Optimizer)] = [
            (goldens.prodigy[1], { try Prodigy(groups: $0, settings: self.prodigySettings(goldens.prodigy[1].settings)) }),
            (goldens.adafactor[2], { try Adafactor(groups: $0, settings: self.adafactorSettings(goldens.adafactor[2].settings)) }),
            (goldens.adafactor[1], { try Adafactor(groups: $0, settings: self.adafactorSettings(goldens.adafactor[1].settings)) }),
        ]
        for (golden, make) in runs {
            func feed(_ all: [String: Variable], _ t: Int) throws {
                for (name, g) in golden.steps[t].grads { all[name]!.grad = try Tensor(shape: all[name]!.shape, scalars: g) }
            }
            let (groupsA, a) = try golden.parameters()
            let straight = try make(groupsA)
            for t in 0..<10 {
                try feed(a, t)
                straight.update(learningRate: Float(golden.steps[t].lr ?? 0))
            }
            let (groupsB, b) = try golden.parameters()
            var first = try make(groupsB)
            for t in 0..<5 {
                try feed(b, t)
                first.update(learningRate: Float(golden.steps[t].lr ?? 0))
            }
            let saved = first.savedState()
            let (groupsC, c) = try golden.parameters()
            for (name, p) in b { c[name]!.value = p.value }
            first = try make(groupsC)
            try first.restore(saved)
            for t in 5..<10 {
                try feed(c, t)
                first.update(learningRate: Float(golden.steps[t].lr ?? 0))
            }
            XCTAssertEqual(first.step, straight.step)
            for (name, p) in a {
                XCTAssertEqual(p.value.scalars.map(\.bitPattern), c[name]!.value.scalars.map(\.bitPattern), "\(golden.name) \(name)")
            }
        }
    }

    func testRefusals() throws {
        let p = Variable(Tensor(zeros: [2, 2]), requiresGrad: true)
        XCTAssertThrowsError(try Prodigy(groups: [ParameterGroup(parameters: [("w", p)], learningRateScale: 0.5)])) {
            XCTAssertTrue("\($0)".contains("one learning rate"), "\($0)")
        }
        var a = AdafactorSettings()
        a.relativeStep = false
        a.warmupInit = true
        XCTAssertThrowsError(try Adafactor(groups: [ParameterGroup(parameters: [("w", p)])], settings: a))
        // State of another optimiser is refused by name.
        let prodigy = try Prodigy(groups: [ParameterGroup(parameters: [("w", p)])])
        p.grad = Tensor(shape: [2, 2], repeating: 1)
        let adam = AdamW(groups: [ParameterGroup(parameters: [("w", p)])])
        adam.update(learningRate: 1e-3)
        XCTAssertThrowsError(try prodigy.restore(adam.savedState())) {
            XCTAssertEqual(($0 as? OptimizerError), .stateMismatch(key: "prodigy.d", reason: "missing"))
        }
    }
}
