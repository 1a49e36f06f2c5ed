// The instruction-set level this module is compiled for (Package.swift: `-target-cpu sapphirerapids` without
// AVX512-FP16; TensorCore runs it only where the CPU reports every feature that target implies).
let kernelSetName = "avx512"
