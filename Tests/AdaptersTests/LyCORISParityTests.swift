// LoHa and LoKr against peft 0.21.2 (LoHaConfig / LoKrConfig): files and goldens made by
// `/root/refenv/bin/python Tests/Reference/make_lycoris_goldens.py` on the tiny SD-1-like UNet. The adapters
// cover linear layers, 1×1 and 3×3 convolutions (flattened factors and Tucker cores) and the stride-2
// downsampler; the mix adds LoRA "a" beside them. Tolerance: 1e-4 of scale (as the LoRA parity tests).
import Adapters
import Autograd
import DiffusionModels
import Foundation
import NN
import SafeTensors
import TensorCore
import TestSupport
import XCTest

final class LyCORISParityTests: XCTestCase {
    static let adapters: [(name: String, kind: AdapterKind, weight: Float)] = [
        ("loha", .loha, 0.6), ("loha_tucker", .loha, 0.5), ("lokr", .lokr, 0.4), ("lokr_tucker", .lokr, 0.3),
    ]

    func lycorisGoldens() throws -> SafeTensorsFile { try SafeTensorsFile(path: adapterFixture("lycoris_goldens.safetensors")) }

    func testWeightDeltasMatchPEFT() throws {
        let goldens = try lycorisGoldens()
        let index = ModuleIndex(component: .unet, root: try loadTinyUNet())
        for (name, kind, _) in Self.adapters {
            let file = try LoRAFile(contentsOf: adapterFixture("\(name).safetensors"))
            XCTAssertEqual(file.kinds, [kind], name)
            XCTAssertEqual(file.format, .kohya, name)
            let resolved = try file.resolve(against: [index])
            XCTAssertEqual(resolved.accounting.unmatched, [], name)
            let expected = Set(goldens.tensors.map(\.name).filter { $0.hasPrefix("delta.\(name).") })
            let checked = resolved.modules.filter { expected.contains("delta.\(name).\($0.path)") }
            XCTAssertEqual(checked.count, expected.count, name)
            XCTAssertTrue(checked.contains { index.shapes[$0.path]!.count == 4 && index.shapes[$0.path]![2] == 3 }, "\(name): a 3×3 convolution")
            XCTAssertTrue(checked.contains { index.shapes[$0.path]!.count == 2 }, "\(name): a linear layer")
            var worst: Float = 0
            for m in checked {
                let golden = try goldens.tensor("delta.\(name).\(m.path)")
                let delta = try m.weights.factors.weightDelta(base: index.shapes[m.path]!)
                worst = max(worst, try assertClose(delta, golden.reshapedUnchecked(delta.shape), nhwcAgainstNCHW: false, "\(name) ΔW \(m.path)"))
            }
            print("\(name): ΔW of \(checked.count) of \(resolved.modules.count) modules, worst error \(worst) of scale")
        }
    }

    func testEachAdapterAloneMatchesPEFTForward() throws {
        let g = try Goldens(), goldens = try lycorisGoldens()
        for (name, _, _) in Self.adapters {
            let unet = try loadTinyUNet()
            let set = AdapterSet(unet: unet, textEncoder: nil)
            let accounting = try set.load(LoRAFile(contentsOf: adapterFixture("\(name).safetensors")), name: name)
            XCTAssertEqual(accounting.unmatched, [], name)
            try assertClose(g.runUNet(unet), goldens.tensor("unet_" + name), "\(name) at 1.0")
        }
    }

    /// Every kind at once with LoRA "a", as branches and fused; unfusing restores the base exactly.
    func testSeveralKindsAtOnceMatchFusedDeltas() throws {
        let g = try Goldens(), goldens = try lycorisGoldens()
        let unet = try loadTinyUNet()
        let before = snapshot(unet)
        let set = AdapterSet(unet: unet, textEncoder: nil)
        for (name, _, weight) in Self.adapters {
            try set.load(LoRAFile(contentsOf: adapterFixture("\(name).safetensors")), name: name, unetWeight: weight)
        }
        try set.load(LoRAFile(contentsOf: adapterFixture("a.kohya.safetensors")), name: "a", unetWeight: 0.7)
        try assertClose(g.runUNet(unet), goldens.tensor("unet_mix"), "four LyCORIS adapters + LoRA a as branches")
        try set.fuse()
        XCTAssertTrue(unet.namedModules().allSatisfy { _, m in ((m as? Linear)?.adapters.isEmpty ?? true) && ((m as? Conv2d)?.adapters.isEmpty ?? true) },
                      "fused adapters leave no branch to run")
        try assertClose(g.runUNet(unet), goldens.tensor("unet_mix"), "fused")
        set.unfuse()
        XCTAssertEqual(snapshot(unet), before, "unfuse restores every base weight exactly")
        try set.setEnabled(false, for: "lokr")
        try set.setWeight("loha", unet: 0, textEncoder: nil)
        try set.remove("a")
        try set.remove("loha_tucker")
        try set.remove("lokr_tucker")
        XCTAssertEqual(try g.runUNet(unet).scalars, try g.runUNet(loadTinyUNet()).scalars, "every adapter off or removed: the base, bit for bit")
        try set.setEnabled(true, for: "lokr")
        try set.setWeight("lokr", unet: 1, textEncoder: nil)
        try assertClose(g.runUNet(unet), goldens.tensor("unet_lokr"), "lokr back on at 1.0")
    }

    /// `lora merge --into-base` for LyCORIS kinds: the state dict with ΔW baked in equals the fused goldens.
    func testFusingIntoAStateDict() throws {
        let g = try Goldens(), goldens = try lycorisGoldens()
        let folder = TestPaths.tests("DiffusionModelsTests/Fixtures/unet_sd1")
        var weights = try SafeTensorsFile(path: folder + "/diffusion_pytorch_model.safetensors").loadAll()
        let index = ModuleIndex(component: .unet, stateDictShapes: weights.mapValues(\.shape))
        var adapters: [(ResolvedLoRA, Float)] = try Self.adapters.map { name, _, w in
            (try LoRAFile(contentsOf: adapterFixture("\(name).safetensors")).resolve(against: [index]), w)
        }
        adapters.append((try LoRAFile(contentsOf: adapterFixture("a.kohya.safetensors")).resolve(against: [index]), 0.7))
        try LoRAAlgebra.fuse(into: &weights, adapters, component: .unet)
        let unet = try loadTinyUNet()
        try unet.load(stateDict: weights)
        try assertClose(g.runUNet(unet), goldens.tensor("unet_mix"), "state dict with every kind baked in")
    }

    /// Per-image weights of several kinds in one batch: each image as it is alone.
    func testPerImageWeightsOfEveryKind() throws {
        let g = try Goldens()
        let sample = try FeatureLayout.nhwc(fromNCHW: g.tensor("unet_sample")), context = try g.tensor("unet_context")
        func row(_ t: Tensor, _ i: Int) throws -> Tensor {
            let n = t.count / t.shape[0]
            return try Tensor(shape: [1] + t.shape.dropFirst(), scalars: Array(t.scalars[(i * n)..<((i + 1) * n)]))
        }
        func run(_ unet: UNet2DConditionModel, _ x: Tensor, _ c: Tensor) throws -> Tensor {
            try withNoGrad { try unet(Variable(x), timesteps: Array(repeating: 500, count: x.shape[0]), conditioning: Conditioning(context: Variable(c))) }.value
        }
        let unet = try loadTinyUNet()
        let set = AdapterSet(unet: unet, textEncoder: nil)
        for name in ["loha", "lokr_tucker"] {
            try set.load(LoRAFile(contentsOf: adapterFixture("\(name).safetensors")), name: name)
        }
        try set.load(LoRAFile(contentsOf: adapterFixture("a.kohya.safetensors")), name: "a")
        let perImage: [[String: Float]] = [["loha": 1, "a": 0.3], ["lokr_tucker": 0.8, "loha": 0.25]]
        let batch = try set.rowWeights(perImage).apply { try run(unet, sample, context) }
        for (i, weights) in perImage.enumerated() {
            for name in set.names { try set.setWeight(name, unet: weights[name] ?? 0, textEncoder: nil) }
            let alone = try run(unet, row(sample, i), row(context, i))
            try assertClose(row(batch, i), alone, tolerance: 1e-5, nhwcAgainstNCHW: false, "image \(i) in the batch vs alone")
        }
    }

    /// On one layer, the no-gradient path (accumulating into the output) gives each batch row exactly what
    /// the row gets alone, and the autograd path agrees.
    func testWeightDeltaRowsAreExactOnALayer() throws {
        let unet = try loadTinyUNet()
        let set = AdapterSet(unet: unet, textEncoder: nil)
        try set.load(LoRAFile(contentsOf: adapterFixture("loha.safetensors")), name: "h")
        try set.load(LoRAFile(contentsOf: adapterFixture("lokr.safetensors")), name: "k")
        let (path, layer) = try XCTUnwrap(unet.namedModules().first { $0.0.hasSuffix("attn1.to_q") })
        let linear = try XCTUnwrap(layer as? Linear)
        var random = PhiloxRandom(seed: 11)
        let x = random.normal(shape: [3, 5, linear.inFeatures])
        let perImage: [[String: Float]] = [["h": 1, "k": 0.5], ["k": 2], ["h": 0.3]]
        let weights = AdapterRowWeights(perImage: perImage, copies: 1, names: ["h", "k"])
        let batch = try weights.apply { try withNoGrad { try linear(Variable(x)) } }.value
        for i in 0..<3 {
            let xi = try Tensor(shape: [1, 5, linear.inFeatures], scalars: Array(x.scalars[(i * 5 * linear.inFeatures)..<((i + 1) * 5 * linear.inFeatures)]))
            let alone = try AdapterRowWeights(perImage: [perImage[i]], copies: 1, names: ["h", "k"])
                .apply { try withNoGrad { try linear(Variable(xi)) } }.value
            let n = alone.count
            XCTAssertEqual(Array(batch.scalars[(i * n)..<((i + 1) * n)]), alone.scalars, "\(path) row \(i) bit for bit")
        }
        let recorded = try weights.apply { try linear(Variable(x, requiresGrad: true)) }.value
        try assertClose(recorded, batch, tolerance: 1e-6, nhwcAgainstNCHW: false, "autograd path vs accumulation")
    }

    func testBadModulesGiveOneClearError() throws {
        let loha = try SafeTensorsFile(path: adapterFixture("loha.safetensors")).loadAll()
        let key = try XCTUnwrap(loha.keys.sorted().first { $0.hasSuffix(".hada_w2_b") })
        var missing = loha
        missing[key] = nil
        XCTAssertThrowsError(try LoRAFile(tensors: missing, path: "missing.safetensors")) { error in
            XCTAssertTrue("\(error)".contains("hada_w2_b"), "\(error)")
        }
        var mixed = loha
        mixed[key.replacingOccurrences(of: ".hada_w2_b", with: ".lora_down.weight")] = Tensor(zeros: [2, 2])
        XCTAssertThrowsError(try LoRAFile(tensors: mixed, path: "mixed.safetensors")) { error in
            XCTAssertTrue("\(error)".contains("several adapter kinds"), "\(error)")
        }
        var wrong = loha
        wrong[key] = Tensor(zeros: [4, 7])
        let index = ModuleIndex(component: .unet, root: try loadTinyUNet())
        XCTAssertThrowsError(try LoRAFile(tensors: wrong, path: "wrong.safetensors").resolve(against: [index])) { error in
            XCTAssertTrue("\(error)".contains("loha does not fit"), "\(error)")
        }
    }

    /// Loaded LyCORIS modules export and write back with the same keys and values.
    func testExportWriteReadRoundTrip() throws {
        let unet = try loadTinyUNet()
        let stack = AdapterStack(root: unet, component: .unet)
        let dir = try temporaryDirectory("lycoris-roundtrip")
        for (name, kind, _) in Self.adapters {
            let source = try LoRAFile(contentsOf: adapterFixture("\(name).safetensors"))
            try stack.load(source.resolve(against: [stack.index]).modules, name: name)
            let path = dir.appendingPathComponent("\(name).safetensors").path
            try LoRAWriter.write(try stack.export(name), to: path)
            let back = try SafeTensorsFile(path: path)
            XCTAssertEqual(back.metadata["ss_network_module"], "lycoris.kohya")
            XCTAssertEqual(back.metadata["ss_network_args"], #"{"algo": "\#(kind.rawValue)"}"#)
            let original = try SafeTensorsFile(path: adapterFixture("\(name).safetensors")).loadAll()
            let written = try back.loadAll()
            XCTAssertEqual(Set(written.keys), Set(original.keys), name)
            for (k, v) in original { XCTAssertEqual(written[k]?.scalars, v.scalars, "\(name) \(k)") }
            XCTAssertThrowsError(try LoRAWriter.write(try stack.export(name), to: path + ".peft", format: .peft)) { error in
                XCTAssertTrue("\(error)".contains("diffusers keys hold LoRA pairs only"), "\(error)")
            }
        }
    }
}
