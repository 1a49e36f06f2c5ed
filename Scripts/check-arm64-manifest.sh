#!/usr/bin/env bash
# Evaluates Package.swift as an arm64 host would (its `#if arch(x86_64)` branches off) and fails if any x86
# CPU flag or x86-only kernel module is still in the package. arm64 cannot be built here; this proves what
# the manifest applies there.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed 's/^#if arch(x86_64)$/#if false \/\/ as on arm64/' Package.swift > "$work/Package.swift"
(cd "$work" && swift package dump-package) > "$work/manifest.json"
python3 - "$work/manifest.json" <<'PY'
import json, sys
manifest = json.load(open(sys.argv[1]))
modules = [t["name"] for t in manifest["targets"] if t["name"].startswith("Kernels")]
flags = [(t["name"], json.dumps(s)) for t in manifest["targets"] for s in t.get("settings", [])]
x86 = [f"{name}: {s}" for name, s in flags if any(w in s for w in ("target-cpu", "-mno-", "-march", "haswell", "sapphirerapids"))]
if modules != ["KernelsPortable"] or x86:
    print("arm64 manifest: kernel modules", modules, "x86 flags", x86)
    sys.exit(1)
print(f"arm64 manifest: kernel modules {modules}, no x86 flag in {len(flags)} target settings")
PY
