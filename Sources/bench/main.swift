// bench: kernel, model and I/O benchmarks. `swift run -c release bench --help`.
import Foundation
print("usage: bench kernels|io|unet|vae|text|generate|train [--json]")
