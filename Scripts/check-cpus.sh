#!/usr/bin/env bash
# Proves the binaries run on CPUs this machine is not: under Debian's qemu-user emulating an AVX2 CPU
# (Haswell: the avx2 kernels) and an SSE4.2 CPU without AVX (Nehalem: the sse2 kernels), it runs the kernel
# tests' fast subset and `generate` on the embedded model (2 steps; on Haswell also with `--precision bf16`, which
# must say it computes in fp32 and give the fp32 picture), and compares each picture with the one made natively:
# identical pixels where the emulated CPU runs kernels that sum as the native ones do (every level with FMA), a
# mean difference of at most 1 level otherwise. First it checks that no code outside
# the AVX kernel modules uses AVX instructions (Scripts/check-isa-isolation.sh) and that the manifest, as
# an arm64 host evaluates it, applies no x86 flag (Scripts/check-arm64-manifest.sh).
#
# Usage: Scripts/check-cpus.sh            (builds what it needs; installs qemu-user if missing)
# Takes about 5 minutes on 2 cores after the builds. x86-64 hosts only.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(uname -m)" != "x86_64" ]; then
  echo "check-cpus: x86-64 only (this is $(uname -m)); nothing to check"
  exit 0
fi
if ! command -v qemu-x86_64 >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user >/dev/null
fi

swift build -c release --product generate
swift build -c release --product bench
swift build --build-tests
release=$(swift build -c release --show-bin-path)
debug=$(swift build --show-bin-path)
tests="$debug/StyleDiffusionPackageTests.xctest"

Scripts/check-arm64-manifest.sh
Scripts/check-isa-isolation.sh "$release/generate" "$release/bench" "$tests"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prompt="a red car in the snow"
run_generate() {   # $1: name; rest: command prefix. Sets $picture and $level.
  local out="$work/$1"; shift
  mkdir -p "$out"
  "$@" "$release/generate" "$prompt" --steps 2 --seed 7 --out "$out" --no-auto-lora --verbose $extra > "$out.log" 2>&1 || {
    grep -v "TCG doesn't support" "$out.log" | tail -n 5; return 1; }
  grep -E "kernels|wrote" "$out.log"
  picture=$(ls "$out"/*.png)
  level=$(sed -n 's/.*generate: kernels \([a-z0-9]*\).*/\1/p' "$out.log")
}
extra=""
run_generate native env -u STYLEDIFFUSION_ISA
native=$picture native_level=$level

# Kernel tests that run on every level: the dispatch and level agreement, GEMM, conv, attention, norms, softmax.
subset="TensorCoreTests.KernelLevelTests TensorCoreTests.GEMMTests TensorCoreTests.Conv2DTests \
TensorCoreTests.AttentionTests TensorCoreTests.NormalizationTests TensorCoreTests.SoftmaxTests"

status=0
for cpu in Haswell Nehalem; do
  echo "== qemu-x86_64 -cpu $cpu"
  start=$(date +%s)
  run_generate "$cpu" env -u STYLEDIFFUSION_ISA qemu-x86_64 -cpu "$cpu" || { status=1; continue; }
  if [ "$level" = "sse2" ] || [ "$native_level" = "sse2" ]; then
    "$release/bench" image-diff "$native" "$picture" --max-mean 1 || status=1
  else
    "$release/bench" image-diff "$native" "$picture" --equal || status=1
  fi
  if [ "$cpu" = Haswell ]; then
    # No AVX512-BF16 here: --precision bf16 says so and renders the fp32 picture.
    fp32=$picture
    extra="--precision bf16"
    run_generate "$cpu-bf16" env -u STYLEDIFFUSION_ISA qemu-x86_64 -cpu "$cpu" || status=1
    extra=""
    grep -q "computing in fp32" "$work/$cpu-bf16.log" || { echo "check-cpus: --precision bf16 did not fall back" >&2; status=1; }
    "$release/bench" image-diff "$fp32" "$picture" --equal || status=1
  fi
  for suite in $subset; do
    if ! qemu-x86_64 -cpu "$cpu" "$tests" "$suite" > "$work/tests.log" 2>&1; then
      grep -v "TCG doesn't support" "$work/tests.log" | tail -n 20
      echo "check-cpus: $suite failed under -cpu $cpu" >&2
      status=1
    fi
    grep -E "Executed [0-9]+ tests?" "$work/tests.log" | tail -n 1 | sed "s/^/$suite: /"
  done
  echo "-cpu $cpu ($level kernels): $(( $(date +%s) - start )) s"
done
[ "$status" -eq 0 ] && echo "check-cpus: passed (native kernels $native_level; Haswell and Nehalem emulated)"
exit "$status"
