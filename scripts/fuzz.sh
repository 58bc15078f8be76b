#!/usr/bin/env bash
# Builds the libFuzzer targets (Fuzz/, a package of its own) with AddressSanitizer and runs each for
# FUZZ_SECONDS seconds (default 60) from its seed corpus (Fuzz/Corpus/<target>, in the repo), after
# replaying the inputs of every crash found so far (Fuzz/Regressions/<target>).
#
#   make fuzz                          # 60 s per target
#   make fuzz FUZZ_SECONDS=3600        # an hour per target
#   FUZZ_TARGETS="FuzzNpy FuzzPNG" scripts/fuzz.sh
#
# New inputs go to Fuzz/.work/<target> (not committed); a crash writes Fuzz/Artifacts/<target>-crash-*
# and makes the script fail. A crash becomes a regression: copy the input to Fuzz/Regressions/<target>/
# (Tests/ScoreSDETests/FuzzRegressionTests.swift replays them in `make test`) and fix the parser.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}
targets=${FUZZ_TARGETS:-"FuzzNpy FuzzSafetensors FuzzPNG FuzzMixture FuzzMixing FuzzCheckpoint FuzzMeasurement FuzzIDX"}

mkdir -p Fuzz/Artifacts
echo "== building the fuzz targets (log: Fuzz/Artifacts/build.log)"
# ld.gold's "Cannot export local symbol __asan_..." warnings are harmless (REFERENCE.md §7).
if ! swift build -c release --package-path Fuzz -Xswiftc -sanitize=fuzzer,address > Fuzz/Artifacts/build.log 2>&1; then
    grep -v "Cannot export local symbol" Fuzz/Artifacts/build.log | tail -30 >&2
    echo "fuzz: the build failed" >&2
    exit 1
fi
status=0
for t in $targets; do
    bin=Fuzz/.build/release/$t
    if [ -d "Fuzz/Regressions/$t" ] && [ -n "$(ls -A "Fuzz/Regressions/$t")" ]; then
        echo "== $t: replaying $(ls "Fuzz/Regressions/$t" | wc -l) regression input(s)"
        "$bin" -runs=0 -rss_limit_mb=2560 "Fuzz/Regressions/$t"/* >/dev/null 2>&1 || { echo "fuzz: $t fails a regression input" >&2; status=1; }
    fi
    mkdir -p "Fuzz/.work/$t"
    echo "== $t: fuzzing for $seconds s"
    if ! "$bin" "Fuzz/.work/$t" "Fuzz/Corpus/$t" -max_total_time="$seconds" \
        -rss_limit_mb=2560 -malloc_limit_mb=2560 -timeout=10 -max_len=65536 -print_final_stats=1 \
        -artifact_prefix="Fuzz/Artifacts/$t-" > "Fuzz/Artifacts/$t.log" 2>&1; then
        echo "fuzz: $t found a problem: see Fuzz/Artifacts/$t.log and Fuzz/Artifacts/$t-*" >&2
        status=1
    fi
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "Fuzz/Artifacts/$t.log" | tr '\n' ' ' || true
    echo
done
exit $status
