#!/usr/bin/env python3
"""Writes GEMMMicrokernels.swift of each kernel module: the register-blocked SGEMM microkernels.

Every instruction-set level gets the same MR x NR tiles (12x32, 6x64, 8x48, 24x16, 8x32), so the GEMM drivers
are shared and every element of C is summed over k in the same order on every level:
- KernelsAVX512: one SIMD16<Float> accumulator per zmm register, the whole tile at once (below);
- KernelsAVX2: the tile in sub-blocks of at most 6 rows x 16 columns (12 SIMD8 accumulators of the 16 ymm
  registers), each over the whole k range;
- KernelsPortable: sub-blocks of at most 5 rows x 8 columns on SIMD4<Float> (SSE2's 16 xmm registers; NEON
  has 32). Its multiply-add is fused on arm64 and a multiply then an add on x86-64's SSE2 baseline, which
  has no FMA instruction (`addingProduct` would become one `fmaf` call per lane).
With FMA the sub-blocked kernels give bitwise the results of the AVX-512 ones.

Each MR x NR kernel keeps its C block in MR*NR/16 SIMD16<Float> locals (one zmm each), so the accumulators
never touch memory inside the k loop. Two variants per shape: `direct` reads a row-major A in place
(row i at `a + i*lda`, addressed from one base pointer per 3 rows so every broadcast is a single
`vbroadcastss [base + lda*s + disp]`), `packed` reads a `[kc][MR]` sliver. B is read as rows of NR floats
`ldb` apart: `ldb = NR` for a packed sliver, the matrix's own leading dimension when read in place.
Run from the package root: python3 Scripts/generate_gemm_microkernels.py
"""
import pathlib

SHAPES = [(12, 32), (6, 64), (8, 48), (24, 16), (8, 32)]
UNROLL = 4


def k_step_emitters(w, direct, mr, rows, r0, nv, vt, lanes, fma, bases):
    """`step(indent, u)` writes one k step of `rows` rows (from row r0 of the tile) times `nv` vectors of B;
    `advance(steps)` is the pointer update after `steps` k steps. Shared by the full-tile and sub-block kernels."""
    def aload(i, u):
        if direct:
            j, r = divmod(i, 3)
            off = {0: f"{4 * u}", 1: f"rsb &+ {4 * u}", 2: f"2 &* rsb &+ {4 * u}"}[r]
            return f"p{j}.load(fromByteOffset: {off}, as: Float.self)"
        return f"pa.load(fromByteOffset: {4 * (u * mr + r0 + i)}, as: Float.self)"

    def step(indent, u):
        s = " " * indent
        for v in range(nv):
            off = f"{u} &* ldbb &+ {v * lanes * 4}" if u else f"{v * lanes * 4}"
            w(f"{s}let b{v} = pb.loadUnaligned(fromByteOffset: {off}, as: {vt}.self)")
        for i in range(rows):
            w(f"{s}do {{")
            w(f"{s}    let av = {vt}(repeating: {aload(i, u)})")
            for v in range(nv):
                w(f"{s}    c{i}_{v} = " + fma.format(c=f"c{i}_{v}", a="av", b=f"b{v}"))
            w(f"{s}}}")

    def advance(steps):
        if direct:
            return "; ".join(f"p{j} += {4 * steps}" for j in range(bases))
        return f"pa += {4 * steps * mr}"

    return step, advance


def kernel(mr, nr, direct):
    nv = nr // 16
    name = f"microkernel{mr}x{nr}{'Direct' if direct else 'Packed'}"
    out = []
    w = out.append
    if direct:
        w(f"/// C[0..<{mr}, 0..<{nr}] (+)= A[{mr} x kc] * B[kc x {nr}], A row-major with leading dimension `lda`,")
    else:
        w(f"/// C[0..<{mr}, 0..<{nr}] (+)= A[{mr} x kc] * B[kc x {nr}], A a packed sliver `[kc][{mr}]` (`lda` unused),")
    w(f"/// B row k at `b + k*ldb` ({nr} floats; `ldb = {nr}` for a packed sliver). `accumulate` adds the old C.")
    w("@inline(never)")
    w(f"func {name}(_ kc: Int, _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,")
    w(f"    _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ accumulate: Bool) {{")
    for i in range(mr):
        w("    " + " ".join(f"var c{i}_{v} = SIMD16<Float>();" for v in range(nv)))
    bases = (mr + 2) // 3
    if direct:
        w("    let rsb = lda &* 4")
        w("    var p0 = UnsafeRawPointer(a)")
        for j in range(1, bases):
            w(f"    var p{j} = UnsafeRawPointer(a + {3 * j} &* lda)")
    else:
        w("    var pa = UnsafeRawPointer(a)")
    w("    var pb = UnsafeRawPointer(b)")
    w("    let ldbb = ldb &* 4")

    step, advance = k_step_emitters(w, direct, mr, mr, 0, nv, "SIMD16<Float>", 16, "{c}.addingProduct({a}, {b})", bases)

    w("    var k = 0")
    w(f"    while k &+ {UNROLL} <= kc {{")
    for u in range(UNROLL):
        w("        do {")
        step(12, u)
        w("        }")
    w(f"        {advance(UNROLL)}; pb += {UNROLL} &* ldbb; k &+= {UNROLL}")
    w("    }")
    w("    while k < kc {")
    step(8, 0)
    w(f"        {advance(1)}; pb += ldbb; k &+= 1")
    w("    }")
    w("    let pc = UnsafeMutableRawPointer(c), ldcb = ldc &* 4")
    w("    if accumulate {")
    for i in range(mr):
        for v in range(nv):
            w(f"        c{i}_{v} += pc.loadUnaligned(fromByteOffset: {i} &* ldcb &+ {v * 64}, as: SIMD16<Float>.self)")
    w("    }")
    for i in range(mr):
        for v in range(nv):
            w(f"    pc.storeBytes(of: c{i}_{v}, toByteOffset: {i} &* ldcb &+ {v * 64}, as: SIMD16<Float>.self)")
    w("}")
    return "\n".join(out)


ISAS = {
    # module: (vector type, lanes, most rows per sub-block, multiply-add, k unrolling)
    "KernelsAVX2": ("SIMD8<Float>", 8, 6, "{c}.addingProduct({a}, {b})", UNROLL),
    "KernelsPortable": ("SIMD4<Float>", 4, 5, "madd({c}, {a}, {b})", 1),
}

PORTABLE_MADD = """/// c + a·b: one fused multiply-add on arm64 (NEON); a multiply and an add on x86-64's SSE2 baseline, which
/// has no FMA instruction (there `addingProduct` becomes a `fmaf` call per lane).
@inline(__always) func madd(_ c: SIMD4<Float>, _ a: SIMD4<Float>, _ b: SIMD4<Float>) -> SIMD4<Float> {
#if arch(x86_64) || arch(i386)
    return c + a * b
#else
    return c.addingProduct(a, b)
#endif
}

"""


def sub_rows(mr, most):
    """The largest divisor of mr that is at most `most`."""
    return max(d for d in range(1, most + 1) if mr % d == 0)


def kernel_sub(mr, nr, direct, isa):
    """The MR x NR kernel as sub-blocks, each summed over the whole k range like the full-tile kernel."""
    vt, lanes, most, fma, unroll = isa
    smr, snr = sub_rows(mr, most), 2 * lanes
    nv = snr // lanes
    name = f"microkernel{mr}x{nr}{'Direct' if direct else 'Packed'}"
    out = []
    w = out.append
    if direct:
        w(f"/// C[0..<{mr}, 0..<{nr}] (+)= A[{mr} x kc] * B[kc x {nr}], A row-major with leading dimension `lda`,")
    else:
        w(f"/// C[0..<{mr}, 0..<{nr}] (+)= A[{mr} x kc] * B[kc x {nr}], A a packed sliver `[kc][{mr}]` (`lda` unused),")
    w(f"/// B row k at `b + k*ldb` ({nr} floats; `ldb = {nr}` for a packed sliver). `accumulate` adds the old C.")
    w(f"/// Computed in {smr} x {snr} sub-blocks.")
    w("@inline(never)")
    w(f"func {name}(_ kc: Int, _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,")
    w(f"    _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ accumulate: Bool) {{")
    w("    let ldbb = ldb &* 4, pc = UnsafeMutableRawPointer(c), ldcb = ldc &* 4")
    if direct:
        w("    let rsb = lda &* 4")
    # Column blocks outside, row blocks inside: a B column block (kc x 16 floats) is read once from L2 and
    # then from L1 for the other row blocks; the A sliver (MR x kc) stays in L1 throughout.
    for c0 in range(0, nr, snr):
        for r0 in range(0, mr, smr):
            w(f"    do {{ // rows {r0}..<{r0 + smr}, columns {c0}..<{c0 + snr}")
            for i in range(smr):
                w("        " + " ".join(f"var c{i}_{v} = {vt}();" for v in range(nv)))
            bases = (smr + 2) // 3
            if direct:
                for j in range(bases):
                    w(f"        var p{j} = UnsafeRawPointer(a + {r0 + 3 * j} &* lda)")
            else:
                w("        var pa = UnsafeRawPointer(a)")
            w(f"        var pb = UnsafeRawPointer(b + {c0})")

            step, advance = k_step_emitters(w, direct, mr, smr, r0, nv, vt, lanes, fma, bases)

            w("        var k = 0")
            if unroll > 1:
                w(f"        while k &+ {unroll} <= kc {{")
                for u in range(unroll):
                    w("            do {")
                    step(16, u)
                    w("            }")
                w(f"            {advance(unroll)}; pb += {unroll} &* ldbb; k &+= {unroll}")
                w("        }")
            w("        while k < kc {")
            step(12, 0)
            w(f"            {advance(1)}; pb += ldbb; k &+= 1")
            w("        }")
            w("        if accumulate {")
            for i in range(smr):
                for v in range(nv):
                    off = f"{r0 + i} &* ldcb &+ {(c0 + v * lanes) * 4}"
                    w(f"            c{i}_{v} += pc.loadUnaligned(fromByteOffset: {off}, as: {vt}.self)")
            w("        }")
            for i in range(smr):
                for v in range(nv):
                    off = f"{r0 + i} &* ldcb &+ {(c0 + v * lanes) * 4}"
                    w(f"        pc.storeBytes(of: c{i}_{v}, toByteOffset: {off}, as: {vt}.self)")
            w("    }")
    w("}")
    return "\n".join(out)


def main():
    sources = pathlib.Path(__file__).resolve().parent.parent / "Sources"
    header = [
        "// GEMM microkernels: register-blocked MR x NR tiles of C on SIMD16<Float> (one zmm per accumulator).",
        "//",
        "// Generated by Scripts/generate_gemm_microkernels.py; edit the script, not this file.",
        "// The driver and the choice of tile live in GEMM.swift.",
        "",
        "",
    ]
    body = [kernel(mr, nr, d) for mr, nr in SHAPES for d in (True, False)]
    (sources / "KernelsAVX512/GEMMMicrokernels.swift").write_text("\n".join(header) + "\n\n".join(body) + "\n")
    for module, isa in ISAS.items():
        header = [
            f"// GEMM microkernels of {module}: the MR x NR tiles of KernelsAVX512 computed in sub-blocks of",
            f"// {isa[0]} accumulators that fit this level's registers; every element of C is summed over k in the",
            "// same order as there.",
            "//",
            "// Generated by Scripts/generate_gemm_microkernels.py; edit the script, not this file.",
            "// The driver and the choice of tile live in GEMM.swift.",
            "",
            "",
        ]
        pre = PORTABLE_MADD if module == "KernelsPortable" else ""
        body = [kernel_sub(mr, nr, d, isa) for mr, nr in SHAPES for d in (True, False)]
        (sources / module / "GEMMMicrokernels.swift").write_text("\n".join(header) + pre + "\n\n".join(body) + "\n")


if __name__ == "__main__":
    main()
