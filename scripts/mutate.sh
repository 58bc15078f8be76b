#!/usr/bin/env bash
# Mutation run: proves the test suite can fail. Applies each deliberate bug of scripts/mutants.txt,
# one at a time, to a scratch copy of the repository, rebuilds it (incrementally, one scratch build
# directory for every mutant), runs the tests that should catch it, and reports the mutants that
# survive (the tests still pass). Every mutant must be killed.
#
#   scripts/mutate.sh                 # every mutant, each against its own test filter
#   scripts/mutate.sh --full          # every mutant against the whole suite (slow: ~10 min per mutant)
#   scripts/mutate.sh --only ID[,ID]  # some mutants
#   scripts/mutate.sh --baseline      # first check that every filter passes on the unmutated copy
#   MUTATE_DIR=/tmp/x scripts/mutate.sh   # scratch copy (default /tmp/scoresde-mutate; reused)
#
# scripts/mutants.txt: one mutant per line, `id @@ test filter @@ file @@ original text @@ mutated text`
# (the original must occur exactly once in the file; `\n` in either text is a newline). Blank lines
# and lines starting with # are ignored.
#
# Not part of CI: each mutant rebuilds part of the library. Measured on the 2-core development
# machine while other builds ran (README "Testing", scripts/mutate-last-run.txt): the first build of
# the scratch copy ~10 min, then 5–20 s per mutant (one file recompiled, the test bundle relinked,
# its filtered tests): 44 of 44 killed in 8 min.
# Exit status: 0 when every mutant was killed, 1 when any survived or failed to apply/build.
set -uo pipefail
export OMPI_MCA_btl=self,vader OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo

repo="$(cd "$(dirname "$0")/.." && pwd)"
list="$repo/scripts/mutants.txt"
scratch="${MUTATE_DIR:-/tmp/scoresde-mutate}"
full=0 only="" baseline=0
while [ $# -gt 0 ]; do
  case "$1" in
    --full) full=1 ;;
    --only) only="$2"; shift ;;
    --baseline) baseline=1 ;;
    --list) list="$2"; shift ;;
    *) echo "usage: $0 [--full] [--only ID,ID] [--baseline] [--list FILE]" >&2; exit 2 ;;
  esac
  shift
done

# Release, but without whole-module optimization and with incremental compilation: a mutant then
# recompiles only its own file (a whole-module build recompiles all of ScoreSDE for every mutant,
# minutes each on 2 cores). Only the test bundle is built (not the CLI or the examples): the
# mutants' filters are library tests. The tests run somewhat slower than in `make test`.
# MUTATE_SWIFT_FLAGS overrides the compiler flags; --full builds everything (CLI tests need it).
flags=(${MUTATE_SWIFT_FLAGS:--Xswiftc -enable-testing -Xswiftc -no-whole-module-optimization -Xswiftc -incremental})
build() {
  local what=(--product ScoreSDEPackageTests)
  [ "$full" -eq 1 ] && what=(--build-tests)
  (cd "$scratch" && swift build -c release "${what[@]}" "${flags[@]}") > "$scratch/.mutate-build.log" 2>&1
}
run_tests() {   # $1: filter ('' = whole suite); output in $scratch/.mutate-test.log
  local args=(test -c release --skip-build)
  [ "$full" -eq 0 ] && [ -n "$1" ] && args+=(--filter "$1")
  (cd "$scratch" && timeout 3600 swift "${args[@]}" "${flags[@]}") > "$scratch/.mutate-test.log" 2>&1
}
failed_tests() {   # the names of the failing tests (swift-testing display names or function names), at most 3
  grep -E '^✘ Test .* (failed|recorded an issue)' "$scratch/.mutate-test.log" | grep -v '^✘ Test run with' \
    | sed -E 's/^✘ Test ("[^"]*"|[^ ]+).*/\1/' | sort -u | head -3 | tr '\n' ';'
}

# Scratch copy of the working tree (tests as they are now, uncommitted changes included); its
# .build survives between runs so every build after the first is incremental.
mkdir -p "$scratch"
tar -C "$repo" --exclude=./.build --exclude=./.git --exclude=./.swiftpm -cf - . | tar -C "$scratch" -xf -
start=$(date +%s)
echo "mutate: scratch $scratch; building the unmutated copy"
build || { echo "mutate: the unmutated copy does not build, see $scratch/.mutate-build.log"; exit 2; }

apply() {   # file old new -> 0 when applied
  python3 - "$scratch/$1" "$2" "$3" <<'EOF'
import sys
path, old, new = sys.argv[1], sys.argv[2].replace('\\n', '\n'), sys.argv[3].replace('\\n', '\n')
src = open(path).read()
n = src.count(old)
if n != 1:
    print(f"original text occurs {n} times", file=sys.stderr); sys.exit(1)
open(path, 'w').write(src.replace(old, new))
EOF
}

trim() { sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//'; }
mapfile -t lines < <(grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$list")
survivors=() problems=() killed=0 total=0
if [ "$baseline" -eq 1 ]; then
  for line in "${lines[@]}"; do
    filter="$(awk -F' @@ ' '{print $2}' <<<"$line" | trim)"
    run_tests "$filter" || { echo "mutate: baseline FAILS for filter '$filter' (see $scratch/.mutate-test.log)"; exit 2; }
  done
  echo "mutate: baseline: every filter passes unmutated"
fi
printf '%-28s %-8s %6s  %s\n' mutant result secs "tests that failed"
for line in "${lines[@]}"; do
  IFS=$'\x1f' read -r id filter file old new < <(awk -F' @@ ' '{printf "%s\x1f%s\x1f%s\x1f%s\x1f%s\n", $1, $2, $3, $4, $5}' <<<"$line")
  id="$(trim <<<"$id")"; filter="$(trim <<<"$filter")"; file="$(trim <<<"$file")"
  if [ -n "$only" ] && [[ ",$only," != *",$id,"* ]]; then continue; fi
  total=$((total + 1)); t0=$(date +%s)
  cp "$repo/$file" "$scratch/$file"
  if ! apply "$file" "$old" "$new" 2> "$scratch/.mutate-apply.log"; then
    printf '%-28s %-8s %6s  %s\n' "$id" NOAPPLY 0 "$(cat "$scratch/.mutate-apply.log")"; problems+=("$id"); continue
  fi
  if ! build; then
    printf '%-28s %-8s %6s  %s\n' "$id" NOBUILD $(( $(date +%s) - t0 )) "$scratch/.mutate-build.log"
    cp "$scratch/.mutate-build.log" "$scratch/.mutate-build-$id.log"; problems+=("$id")
  elif run_tests "$filter"; then
    printf '%-28s %-8s %6s  %s\n' "$id" SURVIVED $(( $(date +%s) - t0 )) "(filter '$filter' passed)"; survivors+=("$id")
  else
    printf '%-28s %-8s %6s  %s\n' "$id" killed $(( $(date +%s) - t0 )) "$(failed_tests)"; killed=$((killed + 1))
    cp "$scratch/.mutate-test.log" "$scratch/.mutate-test-$id.log"
  fi
  cp "$repo/$file" "$scratch/$file"   # restore (built together with the next mutant)
done
echo "mutate: $killed of $total killed in $(( ($(date +%s) - start) / 60 )) min; survivors: ${survivors[*]:-none}; not applied/built: ${problems[*]:-none}"
[ ${#survivors[@]} -eq 0 ] && [ ${#problems[@]} -eq 0 ]
