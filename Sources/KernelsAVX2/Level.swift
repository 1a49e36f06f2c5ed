// The instruction-set level this module is compiled for (Package.swift: `-target-cpu haswell`: AVX2, FMA,
// F16C, BMI1/2, LZCNT, MOVBE; TensorCore runs it only where the CPU reports all of them).
let kernelSetName = "avx2"
