#!/usr/bin/env bash
# Builds and runs the libFuzzer targets (not part of CI).
#   Fuzz/run.sh safetensors [seconds]   the safetensors header validator
#   Fuzz/run.sh png [seconds]           PNG decoding (libpng through the CLibPNG shim)
# Builds the library sources with coverage + AddressSanitizer into Fuzz/.build, seeds a corpus from the
# test fixtures, runs for the given time (default 600 s) at low priority and leaves any crashing input
# as Fuzz/crash-*; copy those into the tests' Fixtures/fuzz folders as regression inputs.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${1:?usage: Fuzz/run.sh safetensors|png [seconds]}"
seconds="${2:-600}"
out=Fuzz/.build/$target
mkdir -p "$out"
flags=(-O -enable-testing -sanitize=fuzzer,address -parse-as-library -swift-version 5 -target-cpu sapphirerapids)

module() {  # module <name> <output dir> <sources...>: a static library + swiftmodule
  local name=$1 dir=$2; shift 2
  swiftc "${flags[@]}" -I "$dir" -emit-library -static -emit-module -module-name "$name" \
    -emit-module-path "$dir/$name.swiftmodule" -o "$dir/lib$name.a" "$@"
}

module TensorCore "$out" Sources/TensorCore/*.swift
case "$target" in
  safetensors)
    module SafeTensors "$out" Sources/SafeTensors/*.swift
    swiftc "${flags[@]}" -I "$out" -L "$out" -lSafeTensors -lTensorCore Fuzz/SafeTensorsHeader/main.swift -o "$out/fuzz"
    seeds=(Tests/SafeTensorsTests/Fixtures)
    ;;
  png)
    clang -O1 -g -fsanitize=fuzzer-no-link,address $(pkg-config --cflags libpng) -ISources/CLibPNG/include \
      -c Sources/CLibPNG/CLibPNG.c -o "$out/CLibPNG.o"
    module PNGImage "$out" -Xcc -ISources/CLibPNG/include -Xcc -fmodule-map-file=Sources/CLibPNG/include/module.modulemap \
      Sources/PNGImage/*.swift
    swiftc "${flags[@]}" -I "$out" -Xcc -fmodule-map-file=Sources/CLibPNG/include/module.modulemap -L "$out" \
      -lPNGImage -lTensorCore "$out/CLibPNG.o" $(pkg-config --libs libpng) Fuzz/PNGDecode/main.swift -o "$out/fuzz"
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
