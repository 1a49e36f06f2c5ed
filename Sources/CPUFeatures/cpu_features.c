// CPUFeatures: cpuid and xgetbv, read once at start-up to choose the kernel level. Compiled with no CPU flag.
#include "cpu_features.h"
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static unsigned long long xcr0(void) {
    unsigned int eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((unsigned long long)edx << 32) | eax;
}

static int has_all(unsigned int reg, unsigned int mask) { return (reg & mask) == mask; }

int styleDiffusionCPULevel(void) {
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    unsigned int ecx1 = c;
    // FMA 12, MOVBE 22, POPCNT 23, OSXSAVE 27, AVX 28, F16C 29
    if (!has_all(ecx1, (1u << 12) | (1u << 22) | (1u << 23) | (1u << 27) | (1u << 28) | (1u << 29))) return 0;
    unsigned long long xcr = xcr0();
    if ((xcr & 0x6) != 0x6) return 0;                                   // XMM and YMM state
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    unsigned int ebx7 = b, ecx7 = c, max7 = a;
    if (!has_all(ebx7, (1u << 3) | (1u << 5) | (1u << 8))) return 0;   // BMI1, AVX2, BMI2
    if (!__get_cpuid(0x80000001u, &a, &b, &c, &d) || !(c & (1u << 5))) return 0;   // LZCNT
    // Level 2: AVX-512 F 16, DQ 17, IFMA 21, CD 28, BW 30, VL 31 (EBX); VBMI 1, VBMI2 6, GFNI 8, VAES 9,
    // VPCLMULQDQ 10, VNNI 11, BITALG 12, VPOPCNTDQ 14 (ECX); BF16 (leaf 7 subleaf 1, EAX bit 5).
    if ((xcr & 0xE6) != 0xE6) return 1;                                 // opmask, ZMM0-15 high, ZMM16-31
    if (!has_all(ebx7, (1u << 16) | (1u << 17) | (1u << 21) | (1u << 28) | (1u << 30) | (1u << 31))) return 1;
    if (!has_all(ecx7, (1u << 1) | (1u << 6) | (1u << 8) | (1u << 9) | (1u << 10) | (1u << 11) | (1u << 12)
                       | (1u << 14))) return 1;
    if (max7 < 1 || !__get_cpuid_count(7, 1, &a, &b, &c, &d) || !(a & (1u << 5))) return 1;
    return 2;
}

void styleDiffusionCPUName(char buffer[49]) {
    unsigned int regs[12];
    buffer[0] = 0;
    if (__get_cpuid_max(0x80000000u, 0) < 0x80000004u) return;
    for (unsigned int i = 0; i < 3; i++)
        __get_cpuid(0x80000002u + i, &regs[4 * i], &regs[4 * i + 1], &regs[4 * i + 2], &regs[4 * i + 3]);
    memcpy(buffer, regs, 48);
    buffer[48] = 0;
}

#else

int styleDiffusionCPULevel(void) { return 0; }

void styleDiffusionCPUName(char buffer[49]) { buffer[0] = 0; }

#endif
