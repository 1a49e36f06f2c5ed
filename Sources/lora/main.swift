// lora: inspect, convert, merge, fuse and resize LoRA adapter files.
//
//   lora info FILE [--pipeline DIR]
//   lora convert IN OUT --to kohya|diffusers [--rank R] [--pipeline DIR]
//   lora merge A.safetensors:0.5 B.safetensors:0.5 -o C.safetensors [--to kohya|diffusers] [--rank R --pipeline DIR]
//   lora merge A.safetensors:0.8 … --into-base DIR -o OUTDIR
//   lora resize IN --rank R -o OUT [--to kohya|diffusers] [--pipeline DIR]
//
// Every kind (LoRA, LoHa, LoKr, DoRA) is read. LoHa / LoKr become LoRA by SVD of their weight delta where a
// LoRA is asked for (resize; merge and convert --to diffusers with --rank), the kept energy printed; their layer
// shapes come from --pipeline. DoRA has no LoRA form (its delta depends on the base): only --into-base takes it.
//
// Arguments go through CLI's parser; errors are one line on stderr; exit 1 for failures, 2 for usage mistakes.
import Adapters
import CLI
import Foundation
import Pipeline
import TensorCore

let usage = """
    usage: lora info FILE [--pipeline DIR]
           lora convert IN OUT --to kohya|diffusers [--rank R] [--pipeline DIR]    (OUT also as -o OUT; --pipeline:
                                 the base model, needed for kohya → diffusers unless the adapter names the embedded
                                 one; --rank R: LoHa / LoKr as LoRA by SVD, needed for --to diffusers)
           lora merge FILE[:w] FILE[:w] … -o OUT [--to kohya|diffusers] [--rank R]    (--rank: merge weight deltas by
                                 SVD, needed when a file is LoHa / LoKr)
           lora merge FILE[:w] … --into-base DIR -o OUTDIR
           lora resize IN --rank R -o OUT [--to kohya|diffusers] [--pipeline DIR]    (LoHa / LoKr become LoRA)
    """

/// The subcommand's arguments (the subcommand name dropped from the positionals).
struct Arguments {
    let parsed: ParsedArguments
    var positional: [String] { Array(parsed.positionals.dropFirst()) }

    func option(_ name: String) -> String? { parsed.string(name) }

    func format() throws -> LoRAFormat {
        switch parsed.string("to") ?? "kohya" {
        case "kohya": return .kohya
        case "diffusers", "peft": return .peft
        case let other: throw CommandLineError.usage("--to takes kohya or diffusers, not '\(other)'")
        }
    }
}

func info(_ args: Arguments) throws {
    guard args.positional.count == 1 else { throw CommandLineError.usage("lora info takes one FILE") }
    let file = try LoRAFile(contentsOf: args.positional[0])
    let ranks = Set(file.modules.map(\.rank)).sorted(), alphas = Set(file.modules.map(\.effectiveAlpha)).sorted()
    print("file:      \(file.path)")
    print("format:    \(file.format.rawValue)")
    print("kind:      \(file.kinds.map(\.rawValue).joined(separator: ", "))")
    if let naming = file.unetNaming {
        print("naming:    \(naming == "ldm" ? "ldm (original checkpoint UNet names: input_blocks / middle_block / output_blocks)" : naming)")
    }
    print("hash:      \(try LoRAHash.shortHash(ofFile: file.path)) (A1111 Lora hashes)")
    for c in ModelComponent.allCases {
        let mine = file.modules.filter { $0.component == c }
        guard !mine.isEmpty else { continue }
        let kinds = Set(mine.map { kind($0.name) }).sorted()
        let convs = mine.filter { m in m.factors.fileTensors.contains { $0.tensor.rank == 4 && $0.tensor.shape[2] > 1 } }.count
        let told = mine.allSatisfy { $0.kind == .lora || $0.kind == .dora }
        print("\(c.rawValue): \(mine.count) modules (\(convs) k×k convolutions\(told ? "" : " in the factors' shapes; flattened ones need --pipeline")); "
              + "targets \(kinds.joined(separator: ", "))")
    }
    print("rank:      \(ranks.map(String.init).joined(separator: ", "))")
    print("alpha:     \(alphas.map { String($0) }.joined(separator: ", "))")
    if !file.unknownKeys.isEmpty { print("unknown:   \(file.unknownKeys.count) tensors, e.g. \(file.unknownKeys.prefix(3).joined(separator: ", "))") }
    for (k, v) in file.metadata.sorted(by: { $0.key < $1.key }) where k != "lora_adapter_metadata" {
        print("meta:      \(k) = \(v.count > 120 ? String(v.prefix(117)) + "…" : v)")
    }
    if let dir = args.option("pipeline") {
        print(try file.resolve(against: DiffusersFolder(path: dir).moduleIndexes()).accounting.report)
    }
}

/// The kind of layer a module name is (`to_q`, `to_out.0`, `conv1`, …), for summaries.
func kind(_ name: String) -> String {
    let dotted = name.contains(".") ? name : name.replacingOccurrences(of: "_", with: ".")
    let known = ["to_out.0", "ff.net.0.proj", "ff.net.2", "downsamplers.0.conv", "upsamplers.0.conv", "to_q", "to_k", "to_v",
                 "proj_in", "proj_out", "conv1", "conv2", "conv_shortcut", "time_emb_proj", "q_proj", "k_proj", "v_proj",
                 "out_proj", "fc1", "fc2"]
    for k in known where name.hasSuffix(k) || dotted.hasSuffix(k.replacingOccurrences(of: "_", with: ".")) { return k }
    return String(dotted.split(separator: ".").last ?? "")
}

/// Modules with dotted names: a kohya file is resolved against a pipeline first.
func dotted(_ file: LoRAFile, pipeline: String?) throws -> [LoRAModuleWeights] {
    guard file.format == .kohya else { return file.modules }
    let pipeline = try AdapterBase.pipeline(given: pipeline, metadata: file.metadata)
    let indexes = try DiffusersFolder(path: pipeline).moduleIndexes()
    let resolved = try file.resolve(against: indexes)
    if !resolved.accounting.unmatched.isEmpty {
        throw AdaptersError.invalidRequest("\(resolved.accounting.unmatched.count) tensors match no module, e.g. \(resolved.accounting.unmatched[0])")
    }
    return resolved.modules.map { m in
        var w = m.weights
        w.name = indexes.first { $0.component == m.component }!.fileName(m.path)
        return w
    }
}

/// The layer shape of each module from the base model (`--pipeline`, or the one the metadata names), for
/// kinds whose factors do not give it (LoHa, LoKr).
func baseShapes(_ files: [LoRAFile], pipeline: String?) throws -> LoRAAlgebra.BaseShapes {
    guard files.contains(where: { $0.kinds.contains { $0 != .lora } }) else { return { _ in nil } }
    let folder: String
    do {
        folder = try AdapterBase.pipeline(given: pipeline, metadata: files[0].metadata)
    } catch is CommandLineError {
        throw CommandLineError.usage("LoHa / LoKr factors do not tell a 3×3 convolution from a linear layer; give --pipeline DIR, "
            + "the base model the adapter was trained on")
    }
    let indexes = try DiffusersFolder(path: folder).moduleIndexes()
    return { m in
        indexes.first { $0.component == m.component }.flatMap { index in index.resolve(m.name).flatMap { index.shapes[$0] } }
    }
}

func printEnergy(_ result: LoRAAlgebra.Resized) {
    print(String(format: "kept energy %.4f%% overall (Σσ² of the kept directions); worst module %@ %.4f%%",
                 100 * result.keptEnergy, result.worstModule.name, 100 * result.worstModule.energy))
}

func convert(_ args: Arguments) throws {
    // OUT as a positional or, as merge and resize spell it, -o/--out.
    let paths = args.positional + (args.option("out").map { [$0] } ?? [])
    guard paths.count == 2 else { throw CommandLineError.usage("lora convert takes IN and OUT (or -o OUT)") }
    let format = try args.format()
    var file = try LoRAFile(contentsOf: paths[0])
    if let r = args.option("rank") {
        guard let rank = Int(r), rank > 0 else { throw CommandLineError.usage("--rank takes a positive integer") }
        let result = try LoRAAlgebra.resize(file, rank: rank, baseShapes: baseShapes([file], pipeline: args.option("pipeline")))
        printEnergy(result)
        file = try LoRAFile(tensors: kohyaTensors(result.modules), metadata: file.metadata, path: file.path)
    } else if format != .kohya, let other = file.modules.first(where: { $0.kind != .lora }) {
        throw AdaptersError.invalidRequest("\(file.path): '\(other.name)' is a \(other.kind.rawValue) module and diffusers keys hold "
            + "LoRA pairs only; give --rank R to convert it to LoRA by SVD (DoRA has no LoRA form)")
    }
    let modules = format == .kohya ? file.modules : try dotted(file, pipeline: args.option("pipeline"))
    try LoRAWriter.write(modules, to: paths[1], format: format, carrying: file.metadata)
    print("wrote \(paths[1]) (\(format.rawValue), \(modules.count) modules)")
}

func merge(_ args: Arguments) throws {
    guard !args.positional.isEmpty else { throw CommandLineError.usage("lora merge needs at least one FILE[:w]") }
    guard let output = args.option("out") else { throw CommandLineError.usage("lora merge needs -o OUT") }
    let inputs = try args.positional.map { spec -> (LoRAFile, Float) in
        let request: AdapterRequest
        do {
            request = try AdapterRequest.parseFlag(spec)
        } catch let error as AdaptersError {
            throw CommandLineError.usage("\(error)")      // a malformed FILE[:w] is a usage mistake (exit 2)
        }
        guard request.unetWeight == request.textEncoderWeight || args.option("into-base") != nil else {
            throw CommandLineError.usage("'\(spec)': separate unet/te weights are only for --into-base")
        }
        return (try LoRAFile(contentsOf: request.name), request.unetWeight)
    }
    if let base = args.option("into-base") {
        let folder = try DiffusersFolder(path: base)
        if try UNetQuantization.read(configPath: folder.url.appendingPathComponent("unet/config.json").path) != nil {
            throw CommandLineError.failure("--into-base \(base): its UNet is 4-bit quantized (bitsandbytes); fusing an adapter "
                + "into a quantized base is refused: merge into the unquantized model")
        }
        let indexes = try folder.moduleIndexes()
        var resolved: [(ResolvedLoRA, Float)] = []
        for (spec, (file, w)) in zip(args.positional, inputs) {
            let r = try file.resolve(against: indexes)
            print(r.accounting.report.split(separator: "\n").first.map(String.init) ?? "")
            let te = try AdapterRequest.parseFlag(spec).textEncoderWeight
            var unetPart = r, tePart = r
            unetPart.modules = r.modules.filter { $0.component == .unet }
            tePart.modules = r.modules.filter { $0.component != .unet }
            resolved += [(unetPart, w), (tePart, te)]
        }
        try folder.writeFused(resolved, to: output)
        print("wrote \(output) (fused pipeline)")
        return
    }
    let merged: [LoRAModuleWeights]
    if let r = args.option("rank") {
        guard let rank = Int(r), rank > 0 else { throw CommandLineError.usage("--rank takes a positive integer") }
        let result = try LoRAAlgebra.merge(inputs.map { (file: $0.0, weight: $0.1) }, rank: rank,
                                           baseShapes: baseShapes(inputs.map(\.0), pipeline: args.option("pipeline")))
        printEnergy(result)
        merged = result.modules
    } else {
        merged = try LoRAAlgebra.merge(inputs.map { (file: $0.0, weight: $0.1) })
    }
    let format = try args.format()
    let modules = format == .kohya || merged.allSatisfy({ $0.name.contains(".") }) ? merged
        : try dotted(LoRAFile(tensors: kohyaTensors(merged), path: output), pipeline: args.option("pipeline"))
    try LoRAWriter.write(modules, to: output, format: format)
    print("wrote \(output) (\(format.rawValue), \(modules.count) modules, rank up to \(modules.map(\.rank).max() ?? 0))")
}

/// Modules as kohya tensors, to resolve kohya-named results against a pipeline.
func kohyaTensors(_ modules: [LoRAModuleWeights]) throws -> [String: Tensor] {
    var out: [String: Tensor] = [:]
    for m in modules {
        let key = m.component.kohyaPrefix + m.name.replacingOccurrences(of: ".", with: "_")
        for (suffix, tensor) in m.factors.fileTensors { out[key + "." + suffix] = tensor }
        out[key + ".alpha"] = Tensor(scalar: m.effectiveAlpha)
    }
    return out
}

func resize(_ args: Arguments) throws {
    guard args.positional.count == 1 else { throw CommandLineError.usage("lora resize takes one IN file") }
    guard let output = args.option("out") else { throw CommandLineError.usage("lora resize needs -o OUT") }
    guard let rank = args.option("rank").flatMap(Int.init), rank > 0 else {
        throw CommandLineError.usage("lora resize needs --rank R (a positive integer)")
    }
    let file = try LoRAFile(contentsOf: args.positional[0])
    let result = file.kinds == [.lora] ? try LoRAAlgebra.resize(file, rank: rank)
        : try LoRAAlgebra.resize(file, rank: rank, baseShapes: baseShapes([file], pipeline: args.option("pipeline")))
    let format = try args.format()
    let modules = format == .kohya || file.format != .kohya ? result.modules
        : try dotted(LoRAFile(tensors: kohyaTensors(result.modules), path: file.path), pipeline: args.option("pipeline"))
    try LoRAWriter.write(modules, to: output, format: format, carrying: file.metadata)
    printEnergy(result)
    print("wrote \(output) (rank \(rank), \(modules.count) modules)")
}

func run(_ argv: [String]) throws {
    let parsed = try ParsedArguments(argv, options: ["pipeline", "to", "out", "into-base", "rank"], flagNames: [],
                                     shortNames: ["-o": "out"])
    guard let command = parsed.positionals.first, !parsed.has("help") else {
        if parsed.has("help") { return print(usage) }
        throw CommandLineError.usage("no command\n" + usage)
    }
    let args = Arguments(parsed: parsed)
    switch command {
    case "info": try info(args)
    case "convert": try convert(args)
    case "merge": try merge(args)
    case "resize": try resize(args)
    case "help": print(usage)
    default: throw CommandLineError.usage("unknown command '\(command)'\n" + usage)
    }
}

exit(runCommand("lora") { try run(Array(CommandLine.arguments.dropFirst())) })
