#!/usr/bin/env bash
# Builds llama-answers against a llama.cpp checkout built OUTSIDE this
# repository (nothing of llama.cpp is kept here). The llama.cpp build:
#   cmake -S $SRC -B $SRC/build -G Ninja -DCMAKE_BUILD_TYPE=Release \
#     -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=OFF \
#     -DLLAMA_BUILD_COMMON=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF \
#     -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_OPENSSL=OFF
#   ninja -C $SRC/build llama
# Usage: utils/llama-answers/build.sh LLAMA_CPP_SRC [OUT]   (OUT defaults to
# $LLAMA_CPP_SRC/build/bin/llama-answers)
set -euo pipefail
src=${1:?usage: build.sh LLAMA_CPP_SRC [OUT]}
out=${2:-$src/build/bin/llama-answers}
here=$(cd "$(dirname "$0")" && pwd)
b=$src/build
mkdir -p "$(dirname "$out")"
libs=("$b/src/libllama.a" "$b/ggml/src/libggml.a")
for l in "$b"/ggml/src/libggml-*.a "$b"/ggml/src/ggml-*/libggml-*.a; do
  [ -e "$l" ] && libs+=("$l")
done
libs+=("$b/ggml/src/libggml-base.a")
c++ -O2 -std=c++17 -I"$src/include" -I"$src/ggml/include" \
  "$here/llama-answers.cpp" -o "$out" \
  -Wl,--start-group "${libs[@]}" -Wl,--end-group -fopenmp -lpthread -ldl -lm
echo "$out"
