// Key conventions, prompt tags and flags, trigger words, hashes, exact merging and SVD resizing.
import Adapters
import Foundation
import NN
import SafeTensors
import TensorCore
import XCTest

final class AdapterFilesTests: XCTestCase {
    func testKeyConventionsReadAlike() throws {
        let down = try Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6]), up = try Tensor(shape: [4, 2], scalars: (0..<8).map(Float.init))
        let spellings: [(String, String, LoRAFormat, ModelComponent)] = [
            ("unet.mid.to_q.lora_A.weight", "unet.mid.to_q.lora_B.weight", .peft, .unet),
            ("unet.mid.to_q.lora_A.default_0.weight", "unet.mid.to_q.lora_B.default_0.weight", .peft, .unet),
            ("unet.mid.to_q.lora.down.weight", "unet.mid.to_q.lora.up.weight", .diffusersLegacy, .unet),
            ("unet.mid.processor.to_q_lora.down.weight", "unet.mid.processor.to_q_lora.up.weight", .diffusersLegacy, .unet),
            ("lora_unet_mid_to_q.lora_down.weight", "lora_unet_mid_to_q.lora_up.weight", .kohya, .unet),
            ("text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_linear_layer.down.weight",
             "text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_linear_layer.up.weight", .diffusersLegacy, .textEncoder),
            ("lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight",
             "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight", .kohya, .textEncoder),
        ]
        for (d, u, format, component) in spellings {
            let file = try LoRAFile(tensors: [d: down, u: up])
            XCTAssertEqual(file.format, format, d)
            XCTAssertEqual(file.modules.count, 1, d)
            XCTAssertEqual(file.modules.first?.component, component, d)
            XCTAssertEqual(file.modules.first?.effectiveAlpha, 2, "α = r without alpha: \(d)")
        }
        let index = ModuleIndex(component: .unet, shapes: ["mid.to_q": [4, 3]])
        let te = ModuleIndex(component: .textEncoder, shapes: ["encoder.layers.0.self_attn.q_proj": [4, 3]])
        XCTAssertEqual(index.resolve("mid_to_q"), "mid.to_q")
        XCTAssertEqual(te.resolve("text_model_encoder_layers_0_self_attn_q_proj"), "encoder.layers.0.self_attn.q_proj")
        XCTAssertEqual(te.fileName("encoder.layers.0.self_attn.q_proj"), "text_model.encoder.layers.0.self_attn.q_proj")
        let kohya = try LoRAFile(tensors: ["lora_unet_mid_to_q.lora_down.weight": down, "lora_unet_mid_to_q.lora_up.weight": up,
                                           "lora_unet_mid_to_q.alpha": Tensor(scalar: 1)])
        XCTAssertEqual(kohya.modules[0].effectiveAlpha, 1)
        let peft = try LoRAFile(tensors: ["unet.mid.to_q.lora_A.weight": down, "unet.mid.to_q.lora_B.weight": up],
                                metadata: ["lora_adapter_metadata": #"{"unet.lora_alpha": 8, "unet.r": 2}"#])
        XCTAssertEqual(peft.modules[0].effectiveAlpha, 8)
        XCTAssertThrowsError(try LoRAFile(tensors: ["unet.mid.to_q.lora_A.weight": down])) { error in
            guard case AdaptersError.incompleteModule = error else { return XCTFail("\(error)") }
        }
    }

    func testFlagsAndPromptTags() throws {
        XCTAssertEqual(try AdapterRequest.parseFlag("a.safetensors"), AdapterRequest(name: "a.safetensors"))
        XCTAssertEqual(try AdapterRequest.parseFlag("a.safetensors:0.8"), AdapterRequest(name: "a.safetensors", unetWeight: 0.8, textEncoderWeight: 0.8))
        XCTAssertEqual(try AdapterRequest.parseFlag("a:unet=0.8,te=0.3"), AdapterRequest(name: "a", unetWeight: 0.8, textEncoderWeight: 0.3))
        XCTAssertThrowsError(try AdapterRequest.parseFlag("a:x")) { XCTAssertEqual("\($0)", "'a:x': weight 'x' is not a number") }
        XCTAssertThrowsError(try AdapterRequest.parseFlag("a:foo=1"))
        var named = AdapterRequest(name: "dir/pytorch_lora_weights.safetensors", unetWeight: 0.8, textEncoderWeight: 0.8)
        named.label = "style"
        XCTAssertEqual(try AdapterRequest.parseFlag("style=dir/pytorch_lora_weights.safetensors:0.8"), named)
        let (prompt, tags) = try AdapterRequest.extractTags(from: "a photo of <lora:sks:0.8> dog, <lora:style> in snow <lora:ink:te=0.5>")
        XCTAssertEqual(prompt, "a photo of dog, in snow")
        XCTAssertEqual(tags, [AdapterRequest(name: "sks", unetWeight: 0.8, textEncoderWeight: 0.8, origin: .prompt),
                              AdapterRequest(name: "style", origin: .prompt),
                              AdapterRequest(name: "ink", unetWeight: 1, textEncoderWeight: 0.5, origin: .prompt)])
        XCTAssertThrowsError(try AdapterRequest.extractTags(from: "x <lora:sks:0.8"))
        XCTAssertThrowsError(try AdapterRequest.extractTags(from: "x <lora:sks:abc>"))
    }

    func testTriggerWordsSelectAdaptersFromTheFolder() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lora-folder-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let m = LoRAModuleWeights(component: .unet, name: "mid.to_q", down: Tensor(zeros: [1, 2]), up: Tensor(zeros: [2, 1]), alpha: 1)
        try LoRAWriter.write([m], to: dir.appendingPathComponent("sks.safetensors").path, info: LoRAFileInfo(triggerPhrase: "sks"))
        try LoRAWriter.write([m], to: dir.appendingPathComponent("ink.safetensors").path, info: LoRAFileInfo(triggerPhrase: "ink style"))
        try LoRAWriter.write([m], to: dir.appendingPathComponent("plain.safetensors").path)
        let folder = AdapterFolder(path: dir.path)
        let auto = folder.triggered(by: "a photo of sks dog", excluding: [])
        XCTAssertEqual(auto.map { ($0.name as NSString).lastPathComponent }, ["sks.safetensors"])
        XCTAssertEqual(auto.first?.usageLine, "using adapter sks.safetensors (trigger \"sks\") at 1.0")
        XCTAssertEqual(folder.triggered(by: "a sksdog, ink", excluding: []).count, 0, "whole words only")
        XCTAssertEqual(folder.triggered(by: "Ink Style painting of SKS", excluding: []).count, 2)
        XCTAssertEqual(folder.triggered(by: "sks dog", excluding: [AdapterRequest(name: "sks", unetWeight: 0.5)]).count, 0,
                       "an explicit request takes precedence")
        XCTAssertEqual(try folder.locate("ink"), dir.appendingPathComponent("ink.safetensors").path)
        XCTAssertThrowsError(try folder.locate("nope")) { XCTAssertTrue("\($0)".contains("ink, plain, sks"), "\($0)") }
    }

    func testA1111LoraHash() throws {
        // The hash covers the bytes after the header: metadata does not change it (A1111 addnet hash).
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lora-hash-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let m = LoRAModuleWeights(component: .unet, name: "mid.to_q", down: Tensor(zeros: [1, 2]), up: Tensor(zeros: [2, 1]), alpha: 1)
        let p1 = dir.appendingPathComponent("x.safetensors").path, p2 = dir.appendingPathComponent("y.safetensors").path
        try LoRAWriter.write([m], to: p1, info: LoRAFileInfo(triggerPhrase: "one"))
        try LoRAWriter.write([m], to: p2, info: LoRAFileInfo(triggerPhrase: "two"))
        XCTAssertEqual(try LoRAHash.shortHash(ofFile: p1), try LoRAHash.shortHash(ofFile: p2))
        XCTAssertEqual(try LoRAHash.shortHash(ofFile: p1).count, 12)
        XCTAssertEqual(LoRAHash.parameterValue([("sks", "0123456789ab"), ("ink", "ba9876543210")]), "sks: 0123456789ab, ink: ba9876543210")
    }

    /// ΔW = Σ w·(α/r)·B·A of a module, in checkpoint layout flattened to [out, in·k·k].
    func delta(_ m: LoRAModuleWeights, _ w: Float = 1) throws -> [Float] {
        let r = m.rank
        let p = try TensorCore.matmul(m.up.reshaped([m.up.shape[0], r]), m.down.reshaped([r, m.down.count / r]))
        return p.scalars.map { $0 * w * m.effectiveAlpha / Float(r) }
    }

    func testMergeConcatenatesRanksExactly() throws {
        let a = try LoRAFile(contentsOf: adapterFixture("a.kohya.safetensors"))
        let b = try LoRAFile(contentsOf: adapterFixture("b.diffusers.safetensors"))
        let merged = try LoRAAlgebra.merge([(a, 0.5), (b, 0.25)])
        XCTAssertEqual(merged.count, Set(a.modules.map { $0.component.rawValue + $0.name } + b.modules.map { $0.component.rawValue + $0.name.replacingOccurrences(of: ".", with: "_") }).count)
        for m in merged where m.component == .unet && m.name.contains("conv2") {
            let key = m.name.replacingOccurrences(of: ".", with: "_")
            let ma = try XCTUnwrap(a.modules.first { $0.name == key && $0.component == .unet })
            let mb = b.modules.first { $0.name == m.name && $0.component == .unet }
            XCTAssertEqual(m.rank, ma.rank + (mb?.rank ?? 0))
            let expected = zip(try delta(ma, 0.5), try mb.map { try delta($0, 0.25) } ?? Array(repeating: 0, count: ma.up.shape[0] * ma.down.count / ma.rank)).map(+)
            let got = try delta(m)
            for (x, y) in zip(got, expected) { XCTAssertEqual(x, y, accuracy: 1e-5 * max(1, abs(y))) }
        }
    }

    func testResizeKeepsTheTopSingularDirections() throws {
        let a = try LoRAFile(contentsOf: adapterFixture("a.diffusers.safetensors"))
        let same = try LoRAAlgebra.resize(a, rank: 4)
        XCTAssertEqual(same.keptEnergy, 1, accuracy: 1e-9)
        for (m, o) in zip(same.modules, a.modules) {
            for (x, y) in zip(try delta(m), try delta(o)) { XCTAssertEqual(x, y, accuracy: 1e-5) }
        }
        let smaller = try LoRAAlgebra.resize(a, rank: 2)
        XCTAssertLessThan(smaller.keptEnergy, 1)
        XCTAssertGreaterThan(smaller.keptEnergy, 0.5)
        XCTAssertTrue(smaller.modules.allSatisfy { $0.rank == 2 && $0.effectiveAlpha == 2 })
        // Rank-2 truncation error equals the dropped singular values: ‖ΔW − ΔW₂‖² = (1 − kept)·‖ΔW‖² per module.
        let o = a.modules[0], m = smaller.modules[0]
        let full = try delta(o), cut = try delta(m)
        let err = zip(full, cut).reduce(0.0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) }
        let norm = full.reduce(0.0) { $0 + Double($1 * $1) }
        let single = try LoRAAlgebra.resize(LoRAFile(tensors: ["unet.x.lora_A.weight": o.down, "unet.x.lora_B.weight": o.up],
                                                     metadata: ["lora_adapter_metadata": #"{"unet.lora_alpha": 8}"#]), rank: 2)
        XCTAssertEqual(err / norm, 1 - single.keptEnergy, accuracy: 1e-4)
    }
}
