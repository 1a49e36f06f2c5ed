// bench load: time and peak memory of loading a model — a diffusers folder or a single original-layout
// .safetensors file — as `generate` loads it. One model per process, since peak RSS only grows: run it once
// for the folder and once for the file.
//
// Goal (issue "single-file checkpoints"): peak RSS while loading ≤ the F32 model's size + 10 %.
import CLI
import Foundation
import NN
import Pipeline

func runLoadBench(_ a: BenchArguments) throws {
    guard let path = a.parsed.positionals.first else {
        throw CommandLineError.usage("usage: bench load PATH [--vae PATH] [--tokenizer DIR]   (PATH: a diffusers folder or a .safetensors file)")
    }
    let before = Int(peakRSSBytes())
    let start = now()
    do {
        let (model, note) = try ModelSource(path: path, vae: a.string("--vae"), tokenizer: a.string("--tokenizer")).load()
        let seconds = now() - start
        var modules: [Module] = [model.unet, model.textEncoder]
        if let vae = model.vae { modules.append(vae) }
        let f32 = modules.reduce(0) { sum, m in sum + m.namedParameters().reduce(0) { $0 + $1.1.value.count * 4 } }
        let peak = Int(peakRSSBytes())
        print("load \(model.name)\(note.map { " (\($0))" } ?? ""): \(String(format: "%.2f", seconds)) s")
        print(String(format: "  F32 parameters %.3f GB; peak RSS %.3f GB = %.3fx (before loading %.3f GB; goal <= 1.1x)",
                     Double(f32) / 1e9, Double(peak) / 1e9, Double(peak) / Double(f32), Double(before) / 1e9))
    } catch {
        throw CommandLineError.failure("bench load: \(error)")
    }
}
