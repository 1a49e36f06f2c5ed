// world: render the picture world, regenerate the example sets and prompt lists, train and check the judge.
//
//   world render --count N --seed S --out DIR [--size 64] [--all]
//   world examples [--root .]
//   world train-judge --seed S --steps N --out pipelines/judge/judge.safetensors [--batch 32] [--lr 0.002]
//   world judge-accuracy [--weights pipelines/judge/judge.safetensors] [--count 1000] [--seed S]
//   world judge-batch --seed S [--step N] --out DIR      (one training batch of train-judge, as the judge sees it)
//   world judge IMAGE.png ...
import CLI
import Foundation
import TensorCore
import Judge
import PictureWorld
import PNGImage

let usage = """
usage: world render --count N --seed S --out DIR [--size 64] [--all]
       world examples [--root DIR]
       world train-judge --seed S --steps N --out FILE [--batch 32] [--lr 0.002]
       world judge-accuracy [--weights FILE] [--count 1000] [--seed S]
       world judge-batch --seed S [--step N] --out DIR
       world judge IMAGE.png ...
"""

/// A subcommand's arguments (CLI's parser) with the defaults the subcommands use.
struct Arguments {
    let parsed: ParsedArguments
    var flags: Set<String> { parsed.flags }
    var positional: [String] { parsed.positionals }

    func string(_ name: String, default d: String? = nil) throws -> String {
        if let v = parsed.string(name) ?? d { return v }
        return try parsed.required(name)
    }

    func int(_ name: String, default d: Int? = nil) throws -> Int {
        if let v = try parsed.int(name) { return v }
        if let d { return d }
        return try parsed.requiredInt(name)
    }

    func float(_ name: String, default d: Float) throws -> Float {
        try parsed.double(name).map(Float.init) ?? d
    }
}

func makeDirectory(_ path: String) throws {
    do {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    } catch {
        throw WorldError.io(path: path, reason: "cannot create folder (\(fileErrorCause(error)))")
    }
}

func writeText(_ text: String, to path: String) throws {
    do {
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    } catch {
        throw WorldError.io(path: path, reason: "cannot write (\(fileErrorCause(error)))")
    }
}

func render(_ a: Arguments) throws {
    let count = try a.int("count"), seed = try a.int("seed"), size = try a.int("size", default: 64)
    let out = try a.string("out")
    guard count >= 0 else { throw CommandLineError.usage("--count must be ≥ 0") }
    let data = try WorldDataset(seed: UInt64(bitPattern: Int64(seed)), options: a.flags.contains("all") ? .all : .base, size: size)
    try makeDirectory(out)
    for i in 0..<count {
        let s = try data.sample(at: i)
        let name = String(format: "%06d", i)
        try PNG.write(s.image, to: "\(out)/\(name).png")
        try writeText(s.caption + "\n", to: "\(out)/\(name).txt")
    }
    print("wrote \(count) images and captions to \(out)")
}

func examples(_ a: Arguments) throws {
    let root = try a.string("root", default: ".")
    try makeDirectory(root + "/images")
    for (i, scene) in Examples.subjectScenes().enumerated() {
        try PNG.write(try scene.render(size: 128), to: "\(root)/images/sks_dog_\(i).png")
    }
    try makeDirectory(root + "/examples/style")
    for (i, scene) in Examples.styleScenes().enumerated() {
        var labels = scene.labels
        labels.style = .photo
        try PNG.write(try scene.render(size: 128), to: "\(root)/examples/style/style_\(i).png")
        try writeText(Caption.make(labels, phrasing: 1) + "\n", to: "\(root)/examples/style/style_\(i).txt")
    }
    try makeDirectory(root + "/examples/sepia")
    for (i, scene) in Examples.sepiaScenes().enumerated() {
        try PNG.write(try Examples.sepia(try scene.render(size: 128)), to: "\(root)/examples/sepia/sepia_\(i).png")
        try writeText(Caption.make(scene.labels, phrasing: 1) + "\n", to: "\(root)/examples/sepia/sepia_\(i).txt")
    }
    try makeDirectory(root + "/prompts")
    let lists: [(String, [String])] = [
        ("validation", PromptSets.validation()), ("subject", PromptSets.subject()), ("prior", PromptSets.prior()),
        ("heldout", PromptSets.heldout().map(\.prompt)),
    ]
    for (name, prompts) in lists {
        try writeText(prompts.joined(separator: "\n") + "\n", to: "\(root)/prompts/\(name).txt")
    }
    print("wrote \(root)/images, \(root)/examples/style, \(root)/examples/sepia and \(root)/prompts")
}

/// Each subcommand's options and flags.
let commands: [String: (options: Set<String>, flags: Set<String>, run: (Arguments) throws -> Void)] = [
    "render": (["count", "seed", "out", "size"], ["all"], render),
    "examples": (["root"], [], examples),
    "train-judge": (["seed", "steps", "out", "batch", "lr"], [], trainJudge),
    "judge-accuracy": (["weights", "count", "seed"], [], judgeAccuracy),
    "judge-batch": (["seed", "step", "out"], [], judgeBatch),
    "judge": (["weights"], [], judgeImages),
]

func run(_ argv: [String]) throws {
    if argv.isEmpty { throw CommandLineError.usage("no command\n" + usage) }
    if argv[0] == "--help" || argv[0] == "-h" || argv[0] == "help" { return print(usage) }
    guard let command = commands[argv[0]] else { throw CommandLineError.usage("unknown command '\(argv[0])'\n" + usage) }
    let parsed = try ParsedArguments(Array(argv.dropFirst()), options: command.options, flagNames: command.flags)
    if parsed.has("help") { return print(usage) }
    try command.run(Arguments(parsed: parsed))
}

exit(runCommand("world") { try run(Array(CommandLine.arguments.dropFirst())) })
