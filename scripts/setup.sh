#!/usr/bin/env bash
# Installs the Debian packages ScoreSDE.swift needs, only when missing. Idempotent and quiet when
# everything is there. Needs root (or sudo) on a fresh machine.
set -euo pipefail
packages=(libgsl-dev pkg-config libpng-dev libopenblas-dev zlib1g-dev)
# oneDNN: the float32 convolutions, GEMM and SiLU of the image networks (Sources/CDNNL).
packages+=(libdnnl-dev)
# BLIS: the library's double-precision BLAS on CPUs that OpenBLAS 0.3.21 does not recognise (loaded
# at run time; see BLASBackend in Sources/ScoreSDE/Core/BLAS.swift).
packages+=(libblis4-pthread)
# Fashion-MNIST (MIT licence): the four gzipped IDX files in /usr/share/datasets/fashion-mnist.
packages+=(dataset-fashion-mnist)
# Open MPI: only for scoresde-mpi's tests (the library and scoresde build and run without it).
packages+=(libopenmpi-dev openmpi-bin)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "setup: installing ${missing[*]}" >&2
if [ "$(id -u)" -eq 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo apt-get update -qq
  sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "setup: missing Debian packages: ${missing[*]}" >&2
  echo "setup: run as root:  apt-get install -y ${missing[*]}" >&2
  exit 1
fi
