#!/usr/bin/env bash
# Runs the library's unit tests (ScoreSDETests) under AddressSanitizer and ThreadSanitizer, each in
# a build directory of its own (.build-asan, .build-tsan; release with testing enabled, as `make test`).
#
#   make sanitize                       # both
#   SANITIZERS=thread make sanitize     # one
#   SANITIZE_FILTER=Checkpoints make sanitize
#
# Not part of CI: the two instrumented builds take longer than CI's budget on two cores. Run it
# before each release of the README's numbers; the last results are in the README.
set -euo pipefail
cd "$(dirname "$0")/.."
sanitizers=${SANITIZERS:-"address thread"}
filter=${SANITIZE_FILTER:-ScoreSDETests}
status=0
for s in $sanitizers; do
    dir=.build-${s:0:1}san
    echo "== $s sanitizer: building in $dir"
    swift build -c release --build-tests -Xswiftc -enable-testing --sanitize="$s" --build-path "$dir"
    echo "== $s sanitizer: swift test --filter $filter"
    # halt_on_error: the first report fails the run; OpenBLAS and GSL are not instrumented.
    if ! ASAN_OPTIONS=detect_leaks=0:halt_on_error=1 TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
        swift test -c release --skip-build --sanitize="$s" --build-path "$dir" --filter "$filter"; then
        echo "sanitize: the tests fail under the $s sanitizer" >&2
        status=1
    fi
done
exit $status
