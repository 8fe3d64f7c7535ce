#!/usr/bin/env bash
# Installs the Debian 12 packages Vindex needs, then the pinned npm packages
# of the tokenizer conformance suite (utils/npm-packages.sh). Idempotent: when
# everything is present it only checks (well under a second) and installs
# nothing.
set -euo pipefail

PACKAGES=(
  cmake ninja-build g++ python3
  llvm-19-dev llvm-19-tools libmlir-19-dev mlir-19-tools
  libflatbuffers-dev flatbuffers-compiler
  libzstd-dev zstd libssl-dev libxxhash-dev libedit-dev zlib1g-dev
  pkg-config libutf8proc-dev
  libgtest-dev libbenchmark-dev
  clang-19 libclang-rt-19-dev
  bsdutils # script(1): a terminal for the progress line's test (essential)
)

# Node and npm run the tokenizer conformance suite: Debian's, unless the
# machine already has both (e.g. NodeSource's nodejs, which conflicts with
# Debian's npm).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  PACKAGES+=(nodejs npm)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages present"
  exec "$(dirname "$0")/npm-packages.sh"
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "setup: installing ${missing[*]}"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
exec "$(dirname "$0")/npm-packages.sh"
