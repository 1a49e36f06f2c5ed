// CBFloat16: BF16 x BF16 -> F32 products with `vdpbf16ps` (see include/bf16_kernels.h).
//
// The microkernel holds an MR x 32 block of C in 2 * MR ZMM accumulators (MR ≤ 12: 24 accumulators, two B
// vectors and one broadcast). Per pair of k it loads one 32-column sliver row of B (64 BF16 = two ZMM) and
// broadcasts the 32-bit pair (A[r][k], A[r][k+1]) of each row, so A needs no packing when consecutive k are
// adjacent in memory (a row-major activation, an NHWC pixel's channels). `vdpbf16ps` multiplies each pair
// exactly and adds both products to the F32 lane: two multiply-adds per lane per instruction, twice the F32
// FMA rate. The block driver walks taps and K chunks of 256 outermost so that a 16 KB chunk of each B sliver
// stays in L1 while every row tile of the block uses it.
#include "bf16_kernels.h"
#include <math.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>

#define SD_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))

int sdBF16Available(void) {
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return 0;          // OSXSAVE
    unsigned int lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 0xE6) != 0xE6) return 0;                                             // XMM, YMM, opmask, ZMM
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    unsigned int max7 = a;
    unsigned int need = (1u << 16) | (1u << 17) | (1u << 30) | (1u << 31);         // F, DQ, BW, VL
    if ((b & need) != need) return 0;
    if (max7 < 1 || !__get_cpuid_count(7, 1, &a, &b, &c, &d)) return 0;
    return (a >> 5) & 1;                                                           // AVX512-BF16
}

/// Round to nearest even, as `vcvtneps2bf16` does; a NaN keeps a quiet NaN payload.
static inline uint16_t bf16Round(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7FFFu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

/// 16 F32 values rounded to BF16 in the low halves of 32-bit lanes.
SD_BF16_TARGET static inline __m512i bf16Lanes(__m512 v) {
    return _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(v));
}

SD_BF16_TARGET void sdBF16PackSliver(const float *src, long ks, long ns, int k, int n0, int nv, uint16_t *dst) {
    if (ns == 1 && nv == SD_BF16_SLIVER && k % 2 == 0) {
        // Columns contiguous (an HWIO kernel, a weight read for the input gradient): rows 2p and 2p+1 of 32
        // columns become 32 (row 2p, row 2p+1) pairs, 16 at a time.
        for (int p = 0; p < k / 2; p++) {
            const float *r0 = src + (long)(2 * p) * ks + n0, *r1 = r0 + ks;
            uint16_t *row = dst + (long)p * 2 * SD_BF16_SLIVER;
            for (int h = 0; h < 2; h++) {
                __m512i lo = bf16Lanes(_mm512_loadu_ps(r0 + 16 * h)), hi = bf16Lanes(_mm512_loadu_ps(r1 + 16 * h));
                _mm512_storeu_si512((void *)(row + 32 * h), _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
            }
        }
        return;
    }
    if (ks == 1 && k % 16 == 0) {
        // Pairs adjacent (a Linear weight [out, in] read as Wᵀ): each column's 16 consecutive k are 8 pairs, written
        // down the sliver's rows 128 bytes apart.
        for (int j = 0; j < SD_BF16_SLIVER; j++) {
            for (int p = 0; p < k / 2; p += 8) {
                uint32_t pairs[8];
                if (j < nv) {
                    _mm256_storeu_si256((__m256i *)pairs,
                                        (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(src + (long)(n0 + j) * ns + 2 * p)));
                } else {
                    memset(pairs, 0, sizeof pairs);
                }
                for (int i = 0; i < 8; i++) memcpy(dst + ((long)(p + i) * SD_BF16_SLIVER + j) * 2, &pairs[i], 4);
            }
        }
        return;
    }
    for (int p = 0; p < (k + 1) / 2; p++) {
        uint16_t *row = dst + (long)p * 2 * SD_BF16_SLIVER;
        const float *r0 = src + (long)(2 * p) * ks, *r1 = r0 + ks;
        int second = 2 * p + 1 < k;                                   // odd k: the last pair's second row is 0
        int j = 0;
        for (; j < nv; j++) {
            long col = (long)(n0 + j) * ns;
            row[2 * j] = bf16Round(r0[col]);
            row[2 * j + 1] = second ? bf16Round(r1[col]) : 0;
        }
        for (; j < SD_BF16_SLIVER; j++) row[2 * j] = row[2 * j + 1] = 0;
    }
}

void sdBF16UnpackSliver(const uint16_t *packed, int k, int nv, float *dst, long ks, long ns, int n0) {
    for (int p = 0; p < k / 2; p++) {
        const uint16_t *row = packed + (long)p * 2 * SD_BF16_SLIVER;
        for (int j = 0; j < nv; j++) {
            for (int t = 0; t < 2; t++) {
                uint32_t u = (uint32_t)row[2 * j + t] << 16;
                float f;
                memcpy(&f, &u, 4);
                dst[(long)(2 * p + t) * ks + (long)(n0 + j) * ns] = f;
            }
        }
    }
}

typedef int32_t SDUnalignedPair __attribute__((aligned(2), may_alias));

/// C[MR x 32] (+)= A[MR x 2*pairs] · B[2*pairs x 32]; `first`: C starts from the bias (or 0) instead of its
/// own value. Columns at and past `nv` are neither read nor written.
SD_BF16_TARGET static inline __attribute__((always_inline))
void sdBF16Microkernel(const int MR, int nv, int pairs, const uint16_t *a, long lda, const uint16_t *b, float *c,
                       long ldc, const float *bias, int first) {
    __m512 acc0[12], acc1[12];
    __mmask16 m0 = nv >= 16 ? 0xFFFF : (__mmask16)((1u << nv) - 1);
    __mmask16 m1 = nv >= 32 ? 0xFFFF : nv <= 16 ? 0 : (__mmask16)((1u << (nv - 16)) - 1);
    if (first) {
        __m512 b0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();
        __m512 b1 = bias ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();
#pragma clang loop unroll(full)
        for (int i = 0; i < MR; i++) { acc0[i] = b0; acc1[i] = b1; }
    } else {
#pragma clang loop unroll(full)
        for (int i = 0; i < MR; i++) {
            acc0[i] = _mm512_maskz_loadu_ps(m0, c + i * ldc);
            acc1[i] = _mm512_maskz_loadu_ps(m1, c + i * ldc + 16);
        }
    }
    for (int p = 0; p < pairs; p++) {
        __m512bh v0 = (__m512bh)_mm512_loadu_si512((const void *)(b + p * 64));
        __m512bh v1 = (__m512bh)_mm512_loadu_si512((const void *)(b + p * 64 + 32));
#pragma clang loop unroll(full)
        for (int i = 0; i < MR; i++) {
            __m512bh ai = (__m512bh)_mm512_set1_epi32(*(const SDUnalignedPair *)(a + i * lda + 2 * p));
            acc0[i] = _mm512_dpbf16_ps(acc0[i], ai, v0);
            acc1[i] = _mm512_dpbf16_ps(acc1[i], ai, v1);
        }
    }
#pragma clang loop unroll(full)
    for (int i = 0; i < MR; i++) {
        _mm512_mask_storeu_ps(c + i * ldc, m0, acc0[i]);
        _mm512_mask_storeu_ps(c + i * ldc + 16, m1, acc1[i]);
    }
}

#define SD_BF16_CASE(R) case R: sdBF16Microkernel(R, nv, pairs, a, lda, b, c, ldc, bias, first); break;

SD_BF16_TARGET static void sdBF16RunTile(int mr, int nv, int pairs, const uint16_t *a, long lda, const uint16_t *b,
                                float *c, long ldc, const float *bias, int first) {
    switch (mr) {
        SD_BF16_CASE(1) SD_BF16_CASE(2) SD_BF16_CASE(3) SD_BF16_CASE(4) SD_BF16_CASE(5) SD_BF16_CASE(6)
        SD_BF16_CASE(7) SD_BF16_CASE(8) SD_BF16_CASE(9) SD_BF16_CASE(10) SD_BF16_CASE(11) SD_BF16_CASE(12)
        default: break;
    }
}

/// Pairs of k per chunk: 128 pairs of a 32-column sliver are 16 KB.
#define SD_BF16_CHUNK_PAIRS 128

SD_BF16_TARGET void sdBF16ProductBlock(const SDBF16Tile *tiles, int tileCount, const uint16_t *x, long lda,
                                       const long *tapOffsets, int taps, int kPerTap, const uint16_t *packed,
                                       int sliverBegin, int sliverEnd, int n, float *out, long ldc,
                                       const float *bias) {
    int pairsPerTap = kPerTap / 2;
    long sliverSize = (long)taps * pairsPerTap * 2 * SD_BF16_SLIVER;
    for (int tap = 0; tap < taps; tap++) {
        for (int p0 = 0; p0 < pairsPerTap; p0 += SD_BF16_CHUNK_PAIRS) {
            int pairs = pairsPerTap - p0 < SD_BF16_CHUNK_PAIRS ? pairsPerTap - p0 : SD_BF16_CHUNK_PAIRS;
            int first = tap == 0 && p0 == 0;
            for (int sv = sliverBegin; sv < sliverEnd; sv++) {
                const uint16_t *b = packed + sv * sliverSize + ((long)tap * pairsPerTap + p0) * 2 * SD_BF16_SLIVER;
                int nv = n - sv * SD_BF16_SLIVER < SD_BF16_SLIVER ? n - sv * SD_BF16_SLIVER : SD_BF16_SLIVER;
                const float *bs = bias ? bias + sv * SD_BF16_SLIVER : 0;
                for (int t = 0; t < tileCount; t++) {
                    sdBF16RunTile(tiles[t].mr, nv, pairs, x + tiles[t].a + tapOffsets[tap] + 2 * p0, lda, b,
                         out + tiles[t].c + sv * SD_BF16_SLIVER, ldc, bs, first);
                }
            }
        }
    }
}

/// 2^x for x ≤ 0 (clamped at -126): a degree-6 polynomial on the fraction, scaled by the integer part.
SD_BF16_TARGET static inline __m512 exp2NonPositive(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-126.0f));
    __m512 xi = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 f = _mm512_sub_ps(x, xi);
    __m512 p = _mm512_set1_ps(1.5403530e-4f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.3333558e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.6181291e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.5504109e-2f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4022651e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.9314718e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, xi);
}

SD_BF16_TARGET void sdBF16AttentionBlock(const uint16_t *q, long qStride, int rows, int d, const uint16_t *packedKeys,
                                         const uint16_t *packedValues, int keys, float scaleLog2, float *scores,
                                         uint16_t *probabilities, float *out, long outStride) {
    int keysEven = keys + (keys & 1);
    SDBF16Tile tiles[8];
    int tileCount = (rows + 11) / 12;
    // S = Q·Kᵀ [rows][keys]
    for (int t = 0, start = 0; t < tileCount; t++) {
        int end = rows * (t + 1) / tileCount;
        tiles[t].a = (long)start * qStride; tiles[t].c = (long)start * keys; tiles[t].mr = end - start;
        start = end;
    }
    long zero = 0;
    sdBF16ProductBlock(tiles, tileCount, q, qStride, &zero, 1, d, packedKeys, 0, (keys + 31) / 32, keys, scores, keys, 0);
    // P = 2^(scale·log2e·S − max) in BF16, row sums kept for the end.
    float sums[96];
    __m512 scale = _mm512_set1_ps(scaleLog2);
    for (int r = 0; r < rows; r++) {
        float *s = scores + (long)r * keys;
        uint16_t *p = probabilities + (long)r * keysEven;
        __m512 m = _mm512_set1_ps(-INFINITY);
        int j = 0;
        for (; j + 16 <= keys; j += 16) m = _mm512_max_ps(m, _mm512_loadu_ps(s + j));
        float mx = _mm512_reduce_max_ps(m);
        for (; j < keys; j++) mx = s[j] > mx ? s[j] : mx;
        __m512 shift = _mm512_set1_ps(mx * scaleLog2), total = _mm512_setzero_ps();
        for (j = 0; j + 16 <= keys; j += 16) {
            __m512 e = exp2NonPositive(_mm512_fmsub_ps(_mm512_loadu_ps(s + j), scale, shift));
            __m256bh b = _mm512_cvtneps_pbh(e);
            total = _mm512_add_ps(total, _mm512_cvtpbh_ps(b));               // sum what the product will use
            _mm256_storeu_si256((__m256i *)(p + j), (__m256i)b);
        }
        if (j < keys) {
            __mmask16 mask = (__mmask16)((1u << (keys - j)) - 1);
            __m512 e = exp2NonPositive(_mm512_fmsub_ps(_mm512_maskz_loadu_ps(mask, s + j), scale, shift));
            __m256bh b = _mm512_cvtneps_pbh(_mm512_maskz_mov_ps(mask, e));
            total = _mm512_add_ps(total, _mm512_cvtpbh_ps(b));
            _mm256_mask_storeu_epi16((__m256i *)(p + j), mask, (__m256i)b);
        }
        if (keys & 1) p[keys] = 0;
        sums[r] = _mm512_reduce_add_ps(total);
    }
    // O = P·V [rows][d], then each row divided by its sum.
    for (int t = 0; t < tileCount; t++) {
        long start = tiles[t].c / keys;
        tiles[t].a = start * keysEven; tiles[t].c = start * outStride;
    }
    sdBF16ProductBlock(tiles, tileCount, probabilities, keysEven, &zero, 1, keysEven, packedValues, 0, (d + 31) / 32, d,
                       out, outStride, 0);
    for (int r = 0; r < rows; r++) {
        float inv = 1.0f / sums[r];                                  // ≥ 1: the row's largest score gives 2^0
        float *o = out + (long)r * outStride;
        int x = 0;
        for (; x + 16 <= d; x += 16) _mm512_storeu_ps(o + x, _mm512_mul_ps(_mm512_loadu_ps(o + x), _mm512_set1_ps(inv)));
        for (; x < d; x++) o[x] *= inv;
    }
}

#else

void sdBF16AttentionBlock(const uint16_t *q, long qStride, int rows, int d, const uint16_t *packedKeys,
                          const uint16_t *packedValues, int keys, float scaleLog2, float *scores,
                          uint16_t *probabilities, float *out, long outStride) {
    (void)q; (void)qStride; (void)rows; (void)d; (void)packedKeys; (void)packedValues; (void)keys; (void)scaleLog2; (void)scores;
    (void)probabilities; (void)out; (void)outStride;
}

int sdBF16Available(void) { return 0; }
void sdBF16PackSliver(const float *src, long ks, long ns, int k, int n0, int nv, uint16_t *dst) {
    (void)src; (void)ks; (void)ns; (void)k; (void)n0; (void)nv; (void)dst;
}
void sdBF16UnpackSliver(const uint16_t *packed, int k, int nv, float *dst, long ks, long ns, int n0) {
    (void)packed; (void)k; (void)nv; (void)dst; (void)ks; (void)ns; (void)n0;
}
void sdBF16ProductBlock(const SDBF16Tile *tiles, int tileCount, const uint16_t *x, long lda,
                        const long *tapOffsets, int taps, int kPerTap, const uint16_t *packed,
                        int sliverBegin, int sliverEnd, int n, float *out, long ldc, const float *bias) {
    (void)tiles; (void)tileCount; (void)x; (void)lda; (void)tapOffsets; (void)taps; (void)kPerTap; (void)packed;
    (void)sliverBegin; (void)sliverEnd; (void)n; (void)out; (void)ldc; (void)bias;
}

#endif
