// The baseline level: compiled with no CPU flag, so it runs on every CPU of its architecture: SSE2 on
// x86-64 (multiply-adds are a multiply and an add there), NEON on arm64 (fused multiply-adds).
#if arch(x86_64) || arch(i386)
let kernelSetName = "sse2"
#elseif arch(arm64)
let kernelSetName = "neon"
#else
let kernelSetName = "portable"
#endif
