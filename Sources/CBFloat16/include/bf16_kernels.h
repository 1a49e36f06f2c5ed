// CBFloat16: matrix products with BF16 operands and F32 accumulation (AVX512-BF16 `vdpbf16ps`), for the
// opt-in BF16 compute of frozen base weights. Compiled with no global CPU flag: the instructions are enabled
// per function, and `sdBF16Available` says whether this CPU and its operating system can run them. On every
// other CPU (and architecture) the functions exist but must not be called.
#ifndef STYLEDIFFUSION_BF16_KERNELS_H
#define STYLEDIFFUSION_BF16_KERNELS_H

#include <stdint.h>

/// Output columns per packed weight sliver.
#define SD_BF16_SLIVER 32

/// 1 when the CPU has AVX-512 F/BW/VL/DQ and AVX512-BF16 and the OS saves the ZMM and opmask state, else 0.
int sdBF16Available(void);

/// One packed weight sliver from an F32 matrix: columns `n0 ..< n0 + nv` (nv ≤ 32) of the K x N matrix
/// `B(k, n) = src[k * ks + n * ns]` as `[(K + 1) / 2][32][2]` BF16 (pairs of consecutive k per column, the operand
/// order of `vdpbf16ps`; an odd K's last pair ends in 0); columns past `nv` are zero.
void sdBF16PackSliver(const float *src, long ks, long ns, int k, int n0, int nv, uint16_t *dst);

/// The inverse: writes the F32 values of a packed sliver back to `B(k, n0 + j)` for j < nv.
void sdBF16UnpackSliver(const uint16_t *packed, int k, int nv, float *dst, long ks, long ns, int n0);

/// A row tile of the product: `mr` (1...12) output rows starting at A offset `a` (BF16 elements) and
/// C offset `c` (floats); consecutive rows are `lda` / `ldc` apart.
typedef struct {
    long a;
    long c;
    int mr;
} SDBF16Tile;

/// `C[tile rows, slivers] = bias + Σ_tap A_tap · B_tap` for each tile and each sliver in
/// `sliverBegin ..< sliverEnd`: A_tap row r is `x + tile.a + tapOffsets[tap] + r * lda` (kPerTap BF16 values,
/// kPerTap even), `packed` holds the slivers as `[sliver][tap][kPerTap / 2][32][2]`, C row r is
/// `out + tile.c + r * ldc`, `n` output columns in all (the last sliver may be partial); `bias` may be NULL.
void sdBF16ProductBlock(const SDBF16Tile *tiles, int tileCount, const uint16_t *x, long lda,
                        const long *tapOffsets, int taps, int kPerTap, const uint16_t *packed,
                        int sliverBegin, int sliverEnd, int n, float *out, long ldc, const float *bias);

/// Up to 96 query rows of attention for one head: `out[r] = softmax(scale · q[r] · Kᵀ) · V` for the `rows` query rows
/// at `q + r * qStride` (BF16, `d` each, d even), with K packed as a `d x keys` product weight (`sdBF16PackSliver` of K rows read
/// transposed) and V as a `keys x d` one (keys rounded up to even, the extra row 0). `scaleLog2` is scale·log2(e).
/// `scores` holds rows x keys floats and `probabilities` rows x (keys rounded up to even) BF16 values of scratch;
/// out row r is `out + r * outStride`. Probabilities are rounded to BF16 before both the product and their sum.
void sdBF16AttentionBlock(const uint16_t *q, long qStride, int rows, int d, const uint16_t *packedKeys,
                          const uint16_t *packedValues, int keys, float scaleLog2, float *scores,
                          uint16_t *probabilities, float *out, long outStride);

#endif
