#!/usr/bin/env bash
# Builds and runs the libFuzzer targets (not part of CI).
#   Fuzz/run.sh safetensors [seconds]   the safetensors header validator
#   Fuzz/run.sh png [seconds]           PNG decoding (libpng through the CLibPNG shim)
#   Fuzz/run.sh image [seconds]         ImageFile.decode: sniffing, PNG, JPEG and WebP (the system's libjpeg.so.62
#                                       and libwebp.so.7 through CImageCodecs, not instrumented), EXIF orientation
# Builds the library sources with coverage + AddressSanitizer into Fuzz/.build, seeds a corpus from the
# test fixtures, runs for the given time (default 600 s) at low priority and leaves any crashing input
# as Fuzz/crash-*; copy those into the tests' Fixtures/fuzz folders as regression inputs.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${1:?usage: Fuzz/run.sh safetensors|png|image [seconds]}"
seconds="${2:-600}"
out=Fuzz/.build/$target
mkdir -p "$out"
flags=(-O -enable-testing -sanitize=fuzzer,address -parse-as-library -swift-version 5 -target-cpu sapphirerapids
       -package-name StyleDiffusion)

module() {  # module <name> <output dir> <sources...>: a static library + swiftmodule
  local name=$1 dir=$2; shift 2
  swiftc "${flags[@]}" -I "$dir" -emit-library -static -emit-module -module-name "$name" \
    -emit-module-path "$dir/$name.swiftmodule" -o "$dir/lib$name.a" "$@"
}

# TensorCore and what it imports: TensorBase, CPUFeatures (C) and the kernel modules (these without sanitizers:
# they are large and not what is fuzzed).
clang -O1 -g -ISources/CPUFeatures/include -c Sources/CPUFeatures/cpu_features.c -o "$out/CPUFeatures.o"
printf 'module CPUFeatures {\n    header "%s"\n    export *\n}\n' "$PWD/Sources/CPUFeatures/include/cpu_features.h" \
  > "$out/CPUFeatures.modulemap"
flags+=(-Xcc -fmodule-map-file="$out/CPUFeatures.modulemap")
module TensorBase "$out" $(find Sources/TensorBase -name '*.swift' | sort)
kernel_flags=(-O -parse-as-library -swift-version 5 -target-cpu sapphirerapids -package-name StyleDiffusion)
kernels=(Portable)
[ "$(uname -m)" = x86_64 ] && kernels=(AVX512 AVX2 Portable)
kernel_libs=()
for level in "${kernels[@]}"; do
  upper=$(echo "$level" | tr a-z A-Z)
  swiftc "${kernel_flags[@]}" -D "KERNELS_$upper" -I "$out" -emit-library -static -emit-module -module-name "Kernels$level" \
    -emit-module-path "$out/Kernels$level.swiftmodule" -o "$out/libKernels$level.a" Sources/Kernels$level/*.swift
  kernel_libs+=(-lKernels$level)
done
module TensorCore "$out" Sources/TensorCore/*.swift
core_libs=(-lTensorCore "${kernel_libs[@]}" -lTensorBase "$out/CPUFeatures.o")
case "$target" in
  safetensors)
    module SafeTensors "$out" Sources/SafeTensors/*.swift
    swiftc "${flags[@]}" -I "$out" -L "$out" -lSafeTensors "${core_libs[@]}" Fuzz/SafeTensorsHeader/main.swift -o "$out/fuzz"
    seeds=(Tests/SafeTensorsTests/Fixtures)
    ;;
  png|image)
    # PNGImage with its two C targets: CLibPNG (libpng) and CImageCodecs (libjpeg / libwebp loaded at run time).
    objects=()
    clang -O1 -g -fsanitize=fuzzer-no-link,address $(pkg-config --cflags libpng) -ISources/CLibPNG/include \
      -c Sources/CLibPNG/CLibPNG.c -o "$out/CLibPNG.o"
    objects+=("$out/CLibPNG.o")
    for c in Sources/CImageCodecs/*.c; do
      clang -O1 -g -fsanitize=fuzzer-no-link,address -ISources/CImageCodecs/include -c "$c" -o "$out/$(basename "$c" .c).o"
      objects+=("$out/$(basename "$c" .c).o")
    done
    maps=(-Xcc -fmodule-map-file=Sources/CLibPNG/include/module.modulemap
          -Xcc -fmodule-map-file=Sources/CImageCodecs/include/module.modulemap)
    module PNGImage "$out" -Xcc -ISources/CLibPNG/include -Xcc -ISources/CImageCodecs/include "${maps[@]}" \
      Sources/PNGImage/*.swift
    main=Fuzz/PNGDecode/main.swift
    [ "$target" = image ] && main=Fuzz/ImageDecode/main.swift
    swiftc "${flags[@]}" -I "$out" "${maps[@]}" -L "$out" -lPNGImage "${core_libs[@]}" "${objects[@]}" \
      $(pkg-config --libs libpng) -ldl "$main" -o "$out/fuzz"
    seeds=(Tests/PNGImageTests/Fixtures)
    ;;
  *) echo "unknown target $target" >&2; exit 2 ;;
esac
corpus=Fuzz/corpus-$target
mkdir -p "$corpus"
find "${seeds[@]}" -type f ! -name '*.json' -size -64k -exec cp -n {} "$corpus/" \;
cd Fuzz
exec nice -n 19 "../$out/fuzz" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
  "corpus-$target"
