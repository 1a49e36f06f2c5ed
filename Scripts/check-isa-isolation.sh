#!/usr/bin/env bash
# Checks that a binary runs on a baseline CPU until the kernel dispatch picks a level: no function outside
# the AVX kernel modules' own symbols contains an AVX/AVX2/AVX-512 instruction (VEX/EVEX encoded: mnemonics
# starting with "v", ymm/zmm registers, opmask registers), and no AVX instruction of the AVX-512 module's
# code sits in a symbol the AVX2 module also uses.
#
# Why: the kernel modules are compiled from the same sources with different -target-cpu, and both emit the
# same standard-library specializations (e.g. `SIMD16<Float>.sum()`) as mergeable symbols; the linker keeps
# one copy for the whole binary. If that copy comes from an AVX module, baseline code calls AVX code and a
# CPU without AVX stops with SIGILL. The C target CBFloat16's `sdBF16*` functions are AVX512-BF16 by design
# (enabled per function, called only where `sdBF16Available()` says so) and are allowed like the kernel modules.
# Usage: Scripts/check-isa-isolation.sh BINARY...
set -euo pipefail
status=0
for bin in "$@"; do
  report=$(objdump -d --no-show-raw-insn "$bin" | awk '
    /^[0-9a-f]+ <.*>:$/ { sym = $2; gsub(/[<>:]/, "", sym); next }
    NF >= 2 {
      ins = $2
      if (ins ~ /^v/ || $0 ~ /%[yz]mm[0-9]/ || $0 ~ /%k[0-7]/) {
        if (sym !~ /KernelsAVX2/ && sym !~ /KernelsAVX512/ && sym !~ /^sdBF16/) bad[sym] = ins
        else if (sym ~ /KernelsAVX2/ && ($0 ~ /%zmm/ || $0 ~ /%k[0-7]/)) bad[sym] = ins " (AVX-512 in AVX2 code)"
      }
    }
    END { for (s in bad) print s " " bad[s] }')
  if [ -n "$report" ]; then
    echo "$bin: AVX instructions outside the AVX kernel modules:" >&2
    echo "$report" | head -40 >&2
    status=1
  else
    echo "$bin: baseline outside the AVX kernel modules"
  fi
done
exit $status
