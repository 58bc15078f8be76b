# The two commands of the README:
#   make sample   # sample the built-in 2-D ring with a PC sampler, write out/samples.png
#   make test     # run every test
.PHONY: setup sample test bench fuzz sanitize
setup:
	@scripts/setup.sh
sample: setup
	swift build -c release --product scoresde
	mkdir -p out && .build/release/scoresde sample --output out/samples.npy --stats out/stats.json --png out/samples.png
# Tests run in release mode: the statistical tests sample thousands of points through
# hundreds of steps, which an unoptimized build makes needlessly slow.
test: setup
	swift build -c release --build-tests -Xswiftc -enable-testing
	swift test -c release --skip-build
bench: setup
	swift run -c release scoresde-bench
# libFuzzer targets of every file parser (Fuzz/), each run for FUZZ_SECONDS from its seed corpus.
FUZZ_SECONDS ?= 60
fuzz: setup
	FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh
# The library's unit tests under AddressSanitizer and ThreadSanitizer (own build directories).
sanitize: setup
	scripts/sanitize.sh
