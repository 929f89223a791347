#!/usr/bin/env bash
# Build llama-cpp-python so that one build runs on every CPU of its architecture.
#
# pip's default build of llama-cpp-python compiles llama.cpp with -march=native: the library is tied to
# the CPU it was built on, and on CPUs that advertise AMX its AMX kernels crash worker threads with
# "Illegal instruction". This script builds it with an explicit baseline instead:
#   x86-64: Haswell level (SSE4.2, AVX, AVX2, FMA, F16C, BMI2), no AVX-512, no AMX;
#   arm64:  ARMv8.2-A with dot product (Graviton 2 and later, Apple M1 and later).
# The wheel is built with pip's cache off (a native wheel from elsewhere can never be reused, and ours
# never enters pip's cache) and kept in our own cache under a key made of the version, the platform
# and these flags, so a second clone on the same machine installs it in seconds.
#
# Usage: scripts/build-llm.sh PYTHON        (installs into PYTHON's environment)
set -euo pipefail
py=${1:?usage: build-llm.sh PYTHON}
version=0.3.36

arch=$(uname -m)
case "$arch" in
  x86_64|amd64)
    flags="-DGGML_NATIVE=OFF -DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
    flags="$flags -DGGML_AVX_VNNI=OFF -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF" ;;
  aarch64|arm64)
    flags="-DGGML_NATIVE=OFF -DGGML_CPU_ARM_ARCH=armv8.2-a+dotprod" ;;
  *)
    flags="-DGGML_NATIVE=OFF" ;;
esac
# rag needs the text model only: no llava/mtmd library, no OpenMP runtime dependency surprises.
flags="$flags -DLLAVA_BUILD=OFF"

pytag=$("$py" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
key=$(printf '%s %s %s %s' "$version" "$arch" "$pytag" "$flags" | sha256sum | cut -c1-16)
cache=${RAG_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rag/wheels}/llama-cpp-python-$version-$key
wheel=$(ls "$cache"/llama_cpp_python-*.whl 2>/dev/null | head -1 || true)

if [ -z "$wheel" ]; then
  echo "building llama-cpp-python $version for any $arch CPU (a few minutes; flags: $flags)"
  tmp=$(mktemp -d)
  CMAKE_ARGS="$flags" FORCE_CMAKE=1 "$py" -m pip wheel -q --no-cache-dir --no-deps \
      --no-binary llama-cpp-python -w "$tmp" "llama-cpp-python==$version"
  mkdir -p "$cache"
  mv "$tmp"/llama_cpp_python-*.whl "$cache"/
  rm -rf "$tmp"
  printf '%s\n' "$flags" > "$cache/FLAGS"
  wheel=$(ls "$cache"/llama_cpp_python-*.whl | head -1)
fi
"$py" -m pip install -q --no-cache-dir --force-reinstall --no-deps "$wheel"
"$py" -m pip install -q "$wheel"   # its dependencies (numpy, jinja2, diskcache, typing-extensions)
