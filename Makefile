# The two commands of the README:
#   make sample   # sample the built-in 2-D ring with a PC sampler, write out/samples.png
#   make test     # run every test
.PHONY: setup sample test bench
setup:
	@scripts/setup.sh
sample: setup
	swift build -c release --product scoresde
	mkdir -p out && .build/release/scoresde sample --output out/samples.npy --stats out/stats.json --png out/samples.png
test: setup
	swift build --build-tests && swift test --skip-build
bench: setup
	swift run -c release scoresde-bench
