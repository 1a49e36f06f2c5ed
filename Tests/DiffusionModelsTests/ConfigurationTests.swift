// Config decoding: fixture configs written by diffusers 0.42.1 `save_pretrained`
// (Tests/Reference/make_model_goldens.py), diffusers defaults, and refusal of unsupported options.
import Foundation
import XCTest
@testable import DiffusionModels

final class ConfigurationTests: XCTestCase {
    func testSD1FixtureConfig() throws {
        let c = try UNet2DConditionConfig(contentsOf: fixtureURL("unet_sd1/config.json"))
        XCTAssertEqual(c.downBlockTypes, [.crossAttnDownBlock2D, .crossAttnDownBlock2D, .downBlock2D])
        XCTAssertEqual(c.upBlockTypes, [.upBlock2D, .crossAttnUpBlock2D, .crossAttnUpBlock2D])
        XCTAssertEqual(c.midBlockType, .unetMidBlock2DCrossAttn)
        XCTAssertEqual(c.blockOutChannels, [16, 32, 32])
        XCTAssertEqual(c.attentionHeads, [4, 4, 4])
        XCTAssertEqual(c.layersPerBlock, [2, 2, 2])
        XCTAssertEqual(c.crossAttentionDim, [32, 32, 32])
        XCTAssertEqual(c.normNumGroups, 8)
        XCTAssertEqual(c.sampleSize, 16)
        XCTAssertFalse(c.useLinearProjection)
        XCTAssertTrue(c.flipSinToCos)
        XCTAssertEqual(c.timeEmbedDim, 64)
    }

    func testSD2AndPixelFixtureConfigs() throws {
        let sd2 = try UNet2DConditionConfig(contentsOf: fixtureURL("unet_sd2/config.json"))
        XCTAssertEqual(sd2.attentionHeads, [2, 4])
        XCTAssertTrue(sd2.useLinearProjection)
        XCTAssertTrue(sd2.upcastAttention)
        XCTAssertEqual(sd2.crossAttentionDim, [24, 24])
        let pixel = try UNet2DConditionConfig(contentsOf: fixtureURL("unet_pixel/config.json"))
        XCTAssertEqual(pixel.inChannels, 3)
        XCTAssertEqual(pixel.outChannels, 3)
        XCTAssertEqual(pixel.onlyCrossAttention, [false, true, false])
        XCTAssertFalse(pixel.flipSinToCos)
        XCTAssertEqual(pixel.freqShift, 1)
    }

    func testVAEFixtureConfig() throws {
        let c = try AutoencoderKLConfig(contentsOf: fixtureURL("vae_sd/config.json"))
        XCTAssertEqual(c.blockOutChannels, [16, 32])
        XCTAssertEqual(c.layersPerBlock, 2)
        XCTAssertEqual(c.latentChannels, 4)
        XCTAssertEqual(c.scalingFactor, 0.18215)
        XCTAssertEqual(c.downsamplingFactor, 2)
        XCTAssertTrue(c.useQuantConv && c.usePostQuantConv && c.midBlockAddAttention)
    }

    func testMissingKeysTakeDiffusersDefaults() throws {
        let unet = try UNet2DConditionConfig(jsonData: Data("{}".utf8))
        XCTAssertEqual(unet, UNet2DConditionConfig())
        XCTAssertEqual(unet.blockOutChannels, [320, 640, 1280, 1280])
        XCTAssertEqual(unet.attentionHeads, [8, 8, 8, 8])
        XCTAssertEqual(unet.crossAttentionDim, [1280, 1280, 1280, 1280])
        XCTAssertEqual(try AutoencoderKLConfig(jsonData: Data("{}".utf8)), AutoencoderKLConfig())
        let sd15 = try UNet2DConditionConfig(jsonData: Data(#"{"cross_attention_dim": 768, "sample_size": 64}"#.utf8))
        XCTAssertEqual(sd15, .sd15)
        let sd21 = try UNet2DConditionConfig(jsonData: Data(#"""
            {"attention_head_dim": [5, 10, 20, 20], "cross_attention_dim": 1024, "sample_size": 96,
             "use_linear_projection": true, "upcast_attention": true, "num_attention_heads": null,
             "class_embed_type": null, "_class_name": "UNet2DConditionModel"}
            """#.utf8))
        XCTAssertEqual(sd21, .sd21)
    }

    func testUnsupportedBlockTypeNamesOptionAndFile() {
        let json = #"{"down_block_types": ["CrossAttnDownBlock2D", "SimpleCrossAttnDownBlock2D"], "up_block_types": ["UpBlock2D", "UpBlock2D"], "block_out_channels": [32, 64]}"#
        XCTAssertThrowsError(try UNet2DConditionConfig(jsonData: Data(json.utf8), file: "model/unet/config.json")) { error in
            XCTAssertEqual(error as? ConfigurationError, .unsupported(option: "down_block_types",
                                                                  value: "\"SimpleCrossAttnDownBlock2D\"",
                                                                  file: "model/unet/config.json"))
            XCTAssertTrue("\(error)".contains("SimpleCrossAttnDownBlock2D"))
            XCTAssertTrue("\(error)".contains("model/unet/config.json"))
        }
        XCTAssertThrowsError(try AutoencoderKLConfig(jsonData: Data(#"{"up_block_types": ["UpDecoderBlock3D"]}"#.utf8), file: "vae/config.json")) { error in
            XCTAssertEqual(error as? ConfigurationError, .unsupported(option: "up_block_types", value: "\"UpDecoderBlock3D\"", file: "vae/config.json"))
        }
    }

    func testUnsupportedOptionsAreRefused() {
        let cases: [(String, String)] = [
            (#"{"addition_embed_type": "text_image"}"#, "addition_embed_type"),   // "text_time" (SDXL) is supported
            (#"{"class_embed_type": "timestep"}"#, "class_embed_type"),
            (#"{"resnet_time_scale_shift": "scale_shift"}"#, "resnet_time_scale_shift"),
            (#"{"act_fn": "gelu"}"#, "act_fn"),
            (#"{"mid_block_type": "UNetMidBlock2DSimpleCrossAttn"}"#, "mid_block_type"),
            (#"{"transformer_layers_per_block": [[1], [2], [3], [4]]}"#, "transformer_layers_per_block"),
        ]
        for (json, option) in cases {
            XCTAssertThrowsError(try UNet2DConditionConfig(jsonData: Data(json.utf8), file: "c.json"), json) { error in
                guard case let .unsupported(o, _, file)? = error as? ConfigurationError else {
                    return XCTFail("\(json): expected unsupported, got \(error)")
                }
                XCTAssertEqual(o, option)
                XCTAssertEqual(file, "c.json")
            }
        }
    }

    func testInconsistentListsAreInvalid() {
        let json = #"{"attention_head_dim": [5, 10, 20]}"#
        XCTAssertThrowsError(try UNet2DConditionConfig(jsonData: Data(json.utf8))) { error in
            guard case let .invalid(option, _, _)? = error as? ConfigurationError else { return XCTFail("\(error)") }
            XCTAssertEqual(option, "attention_head_dim")
        }
        XCTAssertThrowsError(try UNet2DConditionConfig(jsonData: Data(#"{"in_channels": "four"}"#.utf8))) { error in
            guard case let .invalid(option, _, _)? = error as? ConfigurationError else { return XCTFail("\(error)") }
            XCTAssertEqual(option, "in_channels")
        }
    }

    func testNullMidBlockAndOnlyCrossAttentionBool() throws {
        let c = try UNet2DConditionConfig(jsonData: Data(#"{"mid_block_type": null, "only_cross_attention": true}"#.utf8))
        XCTAssertNil(c.midBlockType)
        XCTAssertEqual(c.onlyCrossAttention, [true, true, true, true])
    }
}

extension ConfigurationTests {
    /// Written configs decode back to the same values (diffusers keys, compact per-level values).
    func testConfigsRoundTripThroughJSON() throws {
        var configs: [UNet2DConditionConfig] = [.sd15, .sd21, .tiny]
        for name in ["unet_sd1", "unet_sd2", "unet_pixel"] {
            configs.append(try UNet2DConditionConfig(contentsOf: fixtureURL("\(name)/config.json")))
        }
        for c in configs {
            let data = try c.jsonData()
            XCTAssertEqual(try UNet2DConditionConfig(jsonData: data), c, String(decoding: data, as: UTF8.self))
        }
        let sd15JSON = String(decoding: try UNet2DConditionConfig.sd15.jsonData(), as: UTF8.self)
        XCTAssertTrue(sd15JSON.contains(#""attention_head_dim" : 8"#), sd15JSON)
        XCTAssertTrue(sd15JSON.contains(#""_class_name" : "UNet2DConditionModel""#), sd15JSON)
        for c in [AutoencoderKLConfig.sd15, .tiny, try AutoencoderKLConfig(contentsOf: fixtureURL("vae_sd/config.json"))] {
            XCTAssertEqual(try AutoencoderKLConfig(jsonData: c.jsonData()), c)
        }
    }
}
