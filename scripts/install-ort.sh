#!/usr/bin/env bash
# Installs the ONNX Runtime shared library (CPU, 1.30.0) where Vigil finds it
# by default: third_party/onnxruntime/lib/libonnxruntime.so.1 under the
# repository root. It comes from the npm package onnxruntime-node, installed
# with --ignore-scripts so nothing downloads CUDA parts. Idempotent: does
# nothing when a loadable library is already there.
set -euo pipefail

ORT_VERSION=1.30.0
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/third_party/onnxruntime/lib"
lib="$dest/libonnxruntime.so.1"

# works reports whether the library exists and its dependencies resolve.
works() {
	[ -s "$1" ] || return 1
	if command -v ldd >/dev/null 2>&1; then
		! ldd "$1" 2>&1 | grep -q 'not found'
	fi
}

if works "$lib"; then
	echo "install-ort: ONNX Runtime already installed at $lib"
	exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "install-ort: npm not found; installing the Debian package npm"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null
	else
		echo "install-ort: npm is required (install Node.js and npm, e.g. 'apt-get install npm'), or set runtime.ort_library / VIGIL_ORT_LIB to an existing libonnxruntime.so" >&2
		exit 1
	fi
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "install-ort: fetching onnxruntime-node@$ORT_VERSION with npm"
npm install --ignore-scripts --no-audit --no-fund --silent --prefix "$tmp" "onnxruntime-node@$ORT_VERSION" >/dev/null
src="$tmp/node_modules/onnxruntime-node/bin/napi-v6/linux/x64"
if [ ! -s "$src/libonnxruntime.so.1" ]; then
	echo "install-ort: $src/libonnxruntime.so.1 is missing from the npm package (only linux/x64 is supported)" >&2
	exit 1
fi

mkdir -p "$dest"
for f in "$src"/libonnxruntime*.so*; do
	case "$(basename "$f")" in
	*cuda* | *tensorrt*) continue ;; # GPU providers: not wanted on CPU hosts
	esac
	cp -f "$f" "$dest/"
done
ln -sfn libonnxruntime.so.1 "$dest/libonnxruntime.so"

if ! works "$lib"; then
	echo "install-ort: $lib was installed but does not load; ldd says:" >&2
	ldd "$lib" >&2 || true
	exit 1
fi
echo "install-ort: ONNX Runtime $ORT_VERSION installed at $lib"
