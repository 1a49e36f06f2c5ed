// CPUFeatures: which kernel instruction-set level this CPU (and its operating system) can run.
#ifndef STYLEDIFFUSION_CPU_FEATURES_H
#define STYLEDIFFUSION_CPU_FEATURES_H

/// 2: every feature KernelsAVX512 is compiled with (`sapphirerapids` less AVX512-FP16 and AVX-VNNI):
///    AVX-512 F, CD, BW, DQ, VL, IFMA, VBMI, VBMI2, VNNI, BITALG, VPOPCNTDQ, BF16, GFNI, VAES, VPCLMULQDQ,
///    with the ZMM and opmask state enabled by the OS; plus everything of level 1.
/// 1: every feature KernelsAVX2 is compiled with (`haswell`): AVX, AVX2, FMA, F16C, BMI1, BMI2, LZCNT,
///    MOVBE, POPCNT, with the YMM state enabled by the OS.
/// 0: the baseline (x86-64 SSE2), and every CPU of another architecture.
int styleDiffusionCPULevel(void);

/// The CPU's brand string ("AMD EPYC 9B14 …"), or "" where the CPU does not report one; `buffer` gets at
/// most 48 characters and a terminating zero.
void styleDiffusionCPUName(char buffer[49]);

#endif
