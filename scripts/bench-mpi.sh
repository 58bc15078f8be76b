#!/usr/bin/env bash
# Throughput of scoresde-mpi sample on 1 and 2 ranks (samples/s from --stats), MPI on loopback and
# shared memory only. On a 2-core machine, 2 ranks is NOT a speed-up measurement: one rank already
# uses both cores with threads; the 2-rank run pins each rank to one thread (--threads 1) so the
# two ranks together use the same two cores.
# Usage: [COUNT=n] [STEPS=n] scripts/bench-mpi.sh [extra sample options], after swift build -c release --product scoresde-mpi
set -euo pipefail
cd "$(dirname "$0")/.."
export OMPI_MCA_btl=self,vader OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
exe=.build/release/scoresde-mpi
args=(sample --model digits-mlp --count "${COUNT:-2048}" --steps "${STEPS:-200}" --seed 1 "$@")
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
rate() { python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print("%.1f samples/s (%.2f s, ranks %d, threads %d)" % (s["samples_per_second"], s["wall_seconds"], s["ranks"], s["threads"]))' "$1"; }
mpirun --oversubscribe -np 1 "$exe" "${args[@]}" --threads 2 --output "$tmp/1.npy" --stats "$tmp/1.json" >/dev/null
mpirun --oversubscribe -np 2 "$exe" "${args[@]}" --threads 1 --output "$tmp/2.npy" --stats "$tmp/2.json" >/dev/null
cmp -s "$tmp/1.npy" "$tmp/2.npy" && same="identical bytes" || same="DIFFERENT BYTES"
echo "scoresde-mpi ${args[*]}: 1 rank: $(rate "$tmp/1.json"); 2 ranks: $(rate "$tmp/2.json"); $same"
