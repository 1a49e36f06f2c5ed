// Single-file (original LDM layout) checkpoints against the same weights as a diffusers folder and against
// diffusers' pictures. Fixtures: Tests/Reference/make_single_file_fixtures.py (run with /root/refenv/bin/python).
import CLIPText
import DiffusionModels
import NN
import PNGImage
import Pipeline
import SafeTensors
import Schedulers
import TensorCore
import TestSupport
import XCTest

final class SingleFileTests: XCTestCase {
    static func path(_ name: String) -> String { TestPaths.pipelineFixture("single-file/" + name) }
    static let tokenizer = TestPaths.pipelineFixture("tiny-sd/tokenizer")

    var scratch: URL!

    override func setUpWithError() throws {
        scratch = FileManager.default.temporaryDirectory.appendingPathComponent("single-file-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: scratch) }

    func load(_ name: String, vae: String? = nil, prediction: PredictionType? = nil) throws -> (StableDiffusionModel, String?) {
        try ModelSource(path: Self.path(name), vae: vae, prediction: prediction, tokenizer: Self.tokenizer).load()
    }

    /// Euler, 4 steps, CFG 7.5, `--rng torch`, 32×32: the goldens' settings.
    func image(_ model: StableDiffusionModel) throws -> Image {
        let p = GenerationParameters(prompt: "a photo of sks dog in the snow", negativePrompt: "blurry, low quality",
                                     steps: 4, guidanceScale: 7.5, sampler: .euler, seed: 1234, rng: .torch,
                                     width: 32, height: 32)
        return try TextToImage(model: model).generate(p)[0].image
    }

    func assertSameWeights(_ a: Module, _ b: Module, _ label: String, file: StaticString = #filePath, line: UInt = #line) {
        let x = a.stateDict(), y = b.stateDict()
        XCTAssertEqual(Set(x.keys), Set(y.keys), label, file: file, line: line)
        let differing = x.keys.sorted().filter { x[$0]!.shape != y[$0]?.shape || x[$0]!.scalars != y[$0]?.scalars }
        XCTAssertEqual(differing, [], "\(label): tensors that differ", file: file, line: line)
    }

    func meanLevels(_ image: Image, _ golden: Tensor) -> Double {
        golden.withUnsafeBufferPointer { e in
            (0..<e.count).reduce(0.0) { $0 + abs(Double(image.pixels[$1]) - Double(e[$1]) * 255) } / Double(e.count)
        }
    }

    /// The SD-1-like file (F16, position_ids, EMA scalars, schedule buffers) gives the folder's weights, scheduler
    /// and PNG bytes.
    func testSD1FileEqualsFolder() throws {
        let folder = try StableDiffusionModel(path: Self.path("sd1-like"))
        let (file, note) = try load("sd1-like.safetensors")
        XCTAssertEqual(note, "SD-1.x, ε-prediction (SD-1.x default)")
        assertSameWeights(folder.unet, file.unet, "unet")
        assertSameWeights(try XCTUnwrap(folder.vae), try XCTUnwrap(file.vae), "vae")
        assertSameWeights(folder.textEncoder, file.textEncoder, "text encoder")
        XCTAssertEqual(folder.unet.config, file.unet.config.with(sampleSize: folder.unet.config.sampleSize))
        var textConfig = folder.textEncoder.config
        textConfig.eosTokenID = 2      // SD-1's legacy config; pooling is not used for conditioning
        XCTAssertEqual(textConfig, file.textEncoder.config)
        XCTAssertEqual(folder.schedulerConfig, file.schedulerConfig)
        XCTAssertEqual(file.name, "sd1-like")
        XCTAssertEqual(try PNG.encode(image(folder)), try PNG.encode(image(file)))
    }

    /// Both files make diffusers' pictures (mean |Δ| ≤ 1 of 255), the SD-2-like one with v-prediction and 16
    /// channels per head from its yaml, OpenCLIP's fused q/k/v split and its last block skipped.
    func testFilesMatchDiffusers() throws {
        let goldens = try SafeTensorsFile(path: Self.path("image_goldens.safetensors"))
        let (sd1, _) = try load("sd1-like.safetensors")
        XCTAssertLessThanOrEqual(meanLevels(try image(sd1), try goldens.tensor("image.sd1")), 1)
        let (sd2, note) = try load("sd2-like.safetensors")
        XCTAssertEqual(note, "SD-2.x, v-prediction (from sd2-like.yaml)")
        XCTAssertEqual(sd2.schedulerConfig.predictionType, .vPrediction)
        XCTAssertEqual(sd2.textEncoder.config.numHiddenLayers, 2)
        XCTAssertEqual(sd2.textEncoder.config.hiddenAct, .gelu)
        XCTAssertEqual(sd2.unet.config.attentionHeads, [2, 2])
        XCTAssertTrue(sd2.unet.config.useLinearProjection)
        XCTAssertEqual(sd2.tokenizer.padTokenID, 0)     // "!"
        let levels = meanLevels(try image(sd2), try goldens.tensor("image.sd2"))
        XCTAssertLessThanOrEqual(levels, 1)
        // With ε the same weights draw another picture.
        let (eps, epsNote) = try load("sd2-like.safetensors", prediction: .epsilon)
        XCTAssertEqual(epsNote, "SD-2.x, ε-prediction (from --prediction, overriding sd2-like.yaml's v_prediction)")
        XCTAssertGreaterThan(meanLevels(try image(eps), try goldens.tensor("image.sd2")), 1)
    }

    /// Without its yaml an SD-2 file is v-prediction with 64 channels per head, which these 32-channel weights
    /// cannot have: the error says so.
    func testSD2DefaultsWithoutYAML() throws {
        let copy = scratch.appendingPathComponent("sd2.safetensors")
        try FileManager.default.copyItem(atPath: Self.path("sd2-like.safetensors"), toPath: copy.path)
        XCTAssertThrowsError(try ModelSource(path: copy.path, tokenizer: Self.tokenizer).load()) { error in
            XCTAssertTrue("\(error)".contains("32 channels do not divide into 0 heads"), "\(error)")
        }
        let checkpoint = try SingleFileCheckpoint(path: Self.path("sd1-like.safetensors"))
        XCTAssertEqual(checkpoint.family, .sd1)
        XCTAssertEqual(checkpoint.predictionType().type, .epsilon)
    }

    /// An F32 file loads as the F16 one; an unknown key and a missing key fail loading, named as the file names them.
    func testStrictKeys() throws {
        let source = try SafeTensorsFile(path: Self.path("sd1-like.safetensors"))
        func rewrite(_ name: String, drop: String? = nil, add: String? = nil) throws -> String {
            var writer = SafeTensorsWriter()
            for key in source.names where key != drop { try writer.add(key, try source.tensor(key)) }
            if let add { try writer.add(add, Tensor(shape: [2], repeating: 0)) }
            let path = scratch.appendingPathComponent(name).path
            try writer.write(to: path)
            return path
        }
        // The same tensors as F32 load to the same weights.
        let (f32, _) = try ModelSource(path: try rewrite("f32.safetensors"), tokenizer: Self.tokenizer).load()
        let (f16, _) = try load("sd1-like.safetensors")
        assertSameWeights(f32.unet, f16.unet, "F32 unet")
        assertSameWeights(f32.textEncoder, f16.textEncoder, "F32 text encoder")
        // Old SD-1 files name the text model's keys without `text_model.`.
        var writer = SafeTensorsWriter()
        for key in source.names {
            try writer.add(key.replacingOccurrences(of: "cond_stage_model.transformer.text_model.", with: "cond_stage_model.transformer."),
                           try source.tensor(key), as: .f16)
        }
        let old = scratch.appendingPathComponent("old.safetensors").path
        try writer.write(to: old)
        assertSameWeights(try ModelSource(path: old, tokenizer: Self.tokenizer).load().model.textEncoder, f16.textEncoder,
                          "text encoder without text_model.")
        let extra = try rewrite("extra.safetensors", add: "model.diffusion_model.input_blocks.1.2.weight")
        XCTAssertThrowsError(try ModelSource(path: extra, tokenizer: Self.tokenizer).load()) { error in
            XCTAssertTrue("\(error)".contains("unused tensor 'model.diffusion_model.input_blocks.1.2.weight'"), "\(error)")
        }
        let stray = try rewrite("stray.safetensors", add: "something_else")
        XCTAssertThrowsError(try ModelSource(path: stray, tokenizer: Self.tokenizer).load()) { error in
            XCTAssertTrue("\(error)".contains("'something_else'"), "\(error)")
        }
        let missing = try rewrite("missing.safetensors", drop: "first_stage_model.decoder.mid.attn_1.k.weight")
        XCTAssertThrowsError(try ModelSource(path: missing, tokenizer: Self.tokenizer).load()) { error in
            XCTAssertTrue("\(error)".contains("missing parameter 'first_stage_model.decoder.mid.attn_1.k.weight'"), "\(error)")
        }
    }

    /// `--vae FILE` (LDM keys, no prefix: the VAE of sd1-like.safetensors) equals `--vae FOLDER` (sd1-like/vae),
    /// on a single file and on a folder.
    func testStandaloneVAE() throws {
        let source = try SafeTensorsFile(path: Self.path("sd1-like.safetensors"))
        var writer = SafeTensorsWriter()
        for key in source.names where key.hasPrefix("first_stage_model.") {
            try writer.add(String(key.dropFirst("first_stage_model.".count)), try source.tensor(key), as: .f16)
        }
        let vaeFile = scratch.appendingPathComponent("vae-ft-like.safetensors").path
        try writer.write(to: vaeFile)
        let vaeFolder = Self.path("sd1-like/vae")

        let (fromFile, _) = try load("sd2-like.safetensors", vae: vaeFile)
        let (fromFolder, _) = try load("sd2-like.safetensors", vae: vaeFolder)
        let (own, _) = try load("sd2-like.safetensors")
        assertSameWeights(try XCTUnwrap(fromFile.vae), try XCTUnwrap(fromFolder.vae), "vae")
        XCTAssertEqual(try PNG.encode(image(fromFile)), try PNG.encode(image(fromFolder)))
        XCTAssertNotEqual(try image(fromFile), try image(own))
        XCTAssertEqual(try fromFile.modelHash(), try own.modelHash())   // the checkpoint's hash, not the VAE's
        let (fromCheckpoint, _) = try load("sd2-like.safetensors", vae: Self.path("sd1-like.safetensors"))
        assertSameWeights(try XCTUnwrap(fromCheckpoint.vae), try XCTUnwrap(fromFolder.vae), "vae of a whole checkpoint")

        let folder = try StableDiffusionModel(path: Self.path("sd1-like"))
        let (folderWithFile, _) = try ModelSource(path: Self.path("sd1-like"), vae: vaeFile).load()
        assertSameWeights(try XCTUnwrap(folder.vae), try XCTUnwrap(folderWithFile.vae), "folder vae")
        XCTAssertEqual(try folderWithFile.modelHash(), try folder.modelHash())
    }

    /// The settings read from an original inference yaml; others are ignored.
    func testLDMYAML() throws {
        let url = scratch.appendingPathComponent("v1-inference.yaml")
        try """
        model:
          base_learning_rate: 1.0e-04
          target: ldm.models.diffusion.ddpm.LatentDiffusion
          params:
            parameterization: 'eps'   # ε
            unet_config:
              params:
                num_heads: 8
                num_head_channels: -1
        """.write(to: url, atomically: true, encoding: .utf8)
        let yaml = try LDMYAML(contentsOf: url)
        XCTAssertEqual(yaml.predictionType, .epsilon)
        XCTAssertEqual(yaml.numHeads, 8)
        XCTAssertEqual(yaml.numHeadChannels, -1)
        try "parameterization: \"x0\"\n".write(to: url, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try LDMYAML(contentsOf: url)) { error in
            XCTAssertTrue("\(error)".contains("parameterization \"x0\""), "\(error)")
        }
    }

    /// A1111's `Model hash` of a single file is its SHA-256's first 10 hex digits.
    func testModelHashIsTheFileHash() throws {
        let (model, _) = try load("sd1-like.safetensors")
        let full = try SHA256.hexDigest(ofFile: Self.path("sd1-like.safetensors"))
        XCTAssertEqual(try model.modelHash(), String(full.prefix(10)))
    }

    /// Without --tokenizer a single file gets the embedded CLIP vocabulary, which these tiny text encoders
    /// (618 token embeddings) cannot take: the error says what to pass.
    func testEmbeddedVocabularyNeedsFullTextEncoder() throws {
        XCTAssertThrowsError(try ModelSource(path: Self.path("sd1-like.safetensors")).load()) { error in
            XCTAssertTrue("\(error)".contains("618 token embeddings, fewer than the tokenizer's 49408 ids; pass --tokenizer"),
                          "\(error)")
        }
    }

    func testPickleRefused() throws {
        let ckpt = scratch.appendingPathComponent("v1-5-pruned-emaonly.ckpt").path
        XCTAssertTrue(FileManager.default.createFile(atPath: ckpt, contents: Data([0x80, 0x02])))
        for vae in [nil, ckpt] {
            XCTAssertThrowsError(try ModelSource(path: vae == nil ? ckpt : Self.path("sd1-like"), vae: vae).load()) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains("pickled checkpoint is refused"), text)
                XCTAssertTrue(text.contains("st.save_file("), text)
                XCTAssertTrue(text.contains("'v1-5-pruned-emaonly.safetensors'"), text)
            }
        }
    }
}

extension UNet2DConditionConfig {
    func with(sampleSize: Int?) -> UNet2DConditionConfig {
        var copy = self
        copy.sampleSize = sampleSize
        return copy
    }
}
