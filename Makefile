# The two commands of the README:
#   make sample   # sample the built-in 2-D ring with a PC sampler, write out/samples.png
#   make test     # run every test
.PHONY: setup sample test bench
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
	scripts/consumer-test.sh
bench: setup
	swift run -c release scoresde-bench
