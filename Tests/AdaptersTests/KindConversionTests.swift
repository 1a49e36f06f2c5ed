// LoHa / LoKr as LoRA (resize, merge by weight delta): the truncated SVD of ΔW against ΔW itself, the kept
// energy against the truncation error, the randomized range finder against an exact low-rank ΔW, and the
// refusals (DoRA; LyCORIS factors without the model's layer shapes).
import Adapters
import Foundation
import SafeTensors
import TensorCore
import TestSupport
import XCTest

final class KindConversionTests: XCTestCase {
    func index() throws -> ModuleIndex { ModuleIndex(component: .unet, root: try loadTinyUNet()) }

    func shapes(_ index: ModuleIndex) -> LoRAAlgebra.BaseShapes {
        { m in index.resolve(m.name).flatMap { index.shapes[$0] } }
    }

    func delta(_ m: LoRAModuleWeights, _ base: [Int]) throws -> [Float] { try m.factors.weightDelta(base: base).scalars }

    func testLyCORISKindsResizeToLoRA() throws {
        let index = try index()
        for name in ["loha", "loha_tucker", "lokr", "lokr_tucker"] {
            let file = try LoRAFile(contentsOf: adapterFixture("\(name).safetensors"))
            XCTAssertThrowsError(try LoRAAlgebra.resize(file, rank: 4), "LyCORIS factors need the layer shapes")
            // Rank 64 ≥ the smaller side of every tiny layer: exact.
            let full = try LoRAAlgebra.resize(file, rank: 64, baseShapes: shapes(index))
            XCTAssertEqual(full.keptEnergy, 1, accuracy: 1e-6, name)
            XCTAssertTrue(full.modules.allSatisfy { $0.kind == .lora })
            for (m, o) in zip(full.modules, file.modules) {
                let base = try XCTUnwrap(index.resolve(o.name).flatMap { index.shapes[$0] })
                XCTAssertNil(m.misfit(base: base), "\(name) \(o.name)")
                for (x, y) in zip(try delta(m, base), try delta(o, base)) { XCTAssertEqual(x, y, accuracy: 1e-4 * max(1, abs(y))) }
            }
            // Rank 2: the kept energy is what the truncation keeps, ‖ΔW − ΔW₂‖² = (1 − kept)·‖ΔW‖² over the file.
            let cut = try LoRAAlgebra.resize(file, rank: 2, baseShapes: shapes(index))
            XCTAssertLessThan(cut.keptEnergy, 1, name)
            var err = 0.0, norm = 0.0
            for (m, o) in zip(cut.modules, file.modules) {
                XCTAssertLessThanOrEqual(m.rank, 2)
                let base = index.shapes[index.resolve(o.name)!]!
                for (x, y) in zip(try delta(m, base), try delta(o, base)) { err += Double((x - y) * (x - y)); norm += Double(y * y) }
            }
            XCTAssertEqual(err / norm, 1 - cut.keptEnergy, accuracy: 1e-4, name)
            print("\(name): rank 2 keeps \(cut.keptEnergy), worst \(cut.worstModule)")
        }
    }

    /// A large LoHa (ΔW 96×80 of rank ≤ 9) through the randomized range finder: rank 9 reproduces it.
    func testRandomizedRangeFinderOnALargeDelta() throws {
        var random = PhiloxRandom(seed: 21)
        let factors = try LoHaFactors(tensors: ["hada_w1_a": random.normal(shape: [96, 3]), "hada_w1_b": random.normal(shape: [3, 80]),
                                                "hada_w2_a": random.normal(shape: [96, 3]), "hada_w2_b": random.normal(shape: [3, 80])],
                                      alpha: 3)
        let m = LoRAModuleWeights(component: .unet, name: "big", factors: factors)
        let file = try LoRAFile(tensors: ["lora_unet_big.hada_w1_a": factors.w1a, "lora_unet_big.hada_w1_b": factors.w1b,
                                          "lora_unet_big.hada_w2_a": factors.w2a, "lora_unet_big.hada_w2_b": factors.w2b,
                                          "lora_unet_big.alpha": Tensor(scalar: 3)])
        let result = try LoRAAlgebra.resize(file, rank: 9, baseShapes: { _ in [96, 80] })
        XCTAssertEqual(result.keptEnergy, 1, accuracy: 1e-5)
        let expected = try delta(m, [96, 80]), got = try delta(result.modules[0], [96, 80])
        let scale = expected.map(abs).max()!
        for (x, y) in zip(got, expected) { XCTAssertEqual(x, y, accuracy: 1e-4 * scale) }
        let fewer = try LoRAAlgebra.resize(file, rank: 4, baseShapes: { _ in [96, 80] })
        XCTAssertLessThan(fewer.keptEnergy, 1)
        XCTAssertGreaterThan(fewer.keptEnergy, 0.3)
    }

    func testMergeOfKindsByWeightDelta() throws {
        let index = try index()
        let loha = try LoRAFile(contentsOf: adapterFixture("loha.safetensors"))
        let a = try LoRAFile(contentsOf: adapterFixture("a.kohya.safetensors"))
        XCTAssertThrowsError(try LoRAAlgebra.merge([(loha, 0.6), (a, 0.7)])) { error in
            XCTAssertTrue("\(error)".contains("--rank"), "\(error)")
        }
        var aUNet = a
        aUNet.modules = a.modules.filter { $0.component == .unet }
        let merged = try LoRAAlgebra.merge([(loha, 0.6), (aUNet, 0.7)], rank: 64, baseShapes: shapes(index))
        XCTAssertEqual(merged.keptEnergy, 1, accuracy: 1e-6)
        for m in merged.modules {
            let key = m.name.replacingOccurrences(of: ".", with: "_")
            let base = index.shapes[index.resolve(m.name)!]!
            var expected = [Float](repeating: 0, count: base.reduce(1, *))
            for (file, w) in [(loha, Float(0.6)), (aUNet, Float(0.7))] {
                if let o = file.modules.first(where: { $0.name.replacingOccurrences(of: ".", with: "_") == key }) {
                    expected = zip(expected, try delta(o, base)).map { $0 + w * $1 }
                }
            }
            for (x, y) in zip(try delta(m, base), expected) { XCTAssertEqual(x, y, accuracy: 1e-4 * max(1, abs(y))) }
        }
    }

    func testDoRAHasNoLoRAForm() throws {
        let dora = try LoRAFile(contentsOf: adapterFixture("dora.kohya.safetensors"))
        XCTAssertThrowsError(try LoRAAlgebra.resize(dora, rank: 2, baseShapes: shapes(try index()))) { error in
            XCTAssertTrue("\(error)".contains("depends on the base weight"), "\(error)")
        }
    }
}
