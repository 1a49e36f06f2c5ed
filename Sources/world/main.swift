// world: render the picture world, regenerate the example sets and prompt lists, train and check the judge.
//
//   world render --count N --seed S --out DIR [--size 64] [--all]
//   world examples [--root .]
//   world train-judge --seed S --steps N --out pipelines/judge/judge.safetensors [--batch 32] [--lr 0.002]
//   world judge-accuracy [--weights pipelines/judge/judge.safetensors] [--count 1000] [--seed S]
//   world judge IMAGE.png ...
import Foundation
import Judge
import PictureWorld
import PNGImage

let usage = """
usage: world render --count N --seed S --out DIR [--size 64] [--all]
       world examples [--root DIR]
       world train-judge --seed S --steps N --out FILE [--batch 32] [--lr 0.002]
       world judge-accuracy [--weights FILE] [--count 1000] [--seed S]
       world judge IMAGE.png ...
"""

struct UsageError: Error, CustomStringConvertible { let description: String }

/// `--name value` options and the remaining positional arguments.
struct Arguments {
    var options: [String: String] = [:]
    var flags: Set<String> = []
    var positional: [String] = []

    init(_ args: ArraySlice<String>, flags known: Set<String> = []) throws {
        var it = args.makeIterator()
        while let a = it.next() {
            if a.hasPrefix("--") {
                let name = String(a.dropFirst(2))
                if known.contains(name) { flags.insert(name); continue }
                guard let v = it.next() else { throw UsageError(description: "\(a) needs a value") }
                options[name] = v
            } else {
                positional.append(a)
            }
        }
    }

    func string(_ name: String, default d: String? = nil) throws -> String {
        if let v = options[name] ?? d { return v }
        throw UsageError(description: "missing --\(name)")
    }

    func int(_ name: String, default d: Int? = nil) throws -> Int {
        guard let s = options[name] else {
            if let d { return d }
            throw UsageError(description: "missing --\(name)")
        }
        guard let v = Int(s) else { throw UsageError(description: "--\(name) expects an integer, got '\(s)'") }
        return v
    }

    func float(_ name: String, default d: Float) throws -> Float {
        guard let s = options[name] else { return d }
        guard let v = Float(s) else { throw UsageError(description: "--\(name) expects a number, got '\(s)'") }
        return v
    }
}

func makeDirectory(_ path: String) throws {
    do {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    } catch {
        throw WorldError.io(path: path, reason: "cannot create folder (\(error.localizedDescription))")
    }
}

func writeText(_ text: String, to path: String) throws {
    do {
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    } catch {
        throw WorldError.io(path: path, reason: "cannot write (\(error.localizedDescription))")
    }
}

func render(_ a: Arguments) throws {
    let count = try a.int("count"), seed = try a.int("seed"), size = try a.int("size", default: 64)
    let out = try a.string("out")
    guard count >= 0 else { throw UsageError(description: "--count must be ≥ 0") }
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

func run() throws {
    let args = CommandLine.arguments
    guard args.count >= 2 else { throw UsageError(description: usage) }
    let rest = args.dropFirst(2)
    switch args[1] {
    case "render": try render(try Arguments(rest, flags: ["all"]))
    case "examples": try examples(try Arguments(rest))
    case "train-judge": try trainJudge(try Arguments(rest))
    case "judge-accuracy": try judgeAccuracy(try Arguments(rest))
    case "judge": try judgeImages(try Arguments(rest))
    default: throw UsageError(description: "unknown command '\(args[1])'\n" + usage)
    }
}

do {
    try run()
} catch {
    FileHandle.standardError.write(("world: \(error)\n").data(using: .utf8) ?? Data())
    exit(1)
}
