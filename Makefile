# The two commands of the README:
#   make sample   # sample the built-in 2-D ring with a PC sampler, write out/samples.png
#   make test     # run every test
#   make test-mpi # only the MPI tests (scoresde-mpi under mpirun -np 2 and 3; part of make test)
.PHONY: setup sample test test-mpi bench fuzz sanitize
# One set of compiler flags for every build of the README's commands, so `make sample` after
# `make test` (or the reverse) recompiles nothing: the tests need -enable-testing (@testable), and
# the tool built with it is the same release build (whole-module optimised) plus exported internals.
BUILD_FLAGS = -c release -Xswiftc -enable-testing
# MPI stays on this machine's loopback and shared memory wherever mpirun starts (tests included).
export OMPI_MCA_btl = self,vader
export OMPI_MCA_btl_tcp_if_include = lo
export OMPI_MCA_oob_tcp_if_include = lo
setup:
	@scripts/setup.sh
sample: setup
	swift build $(BUILD_FLAGS) --product scoresde
	mkdir -p out && .build/release/scoresde sample --output out/samples.npy --stats out/stats.json --png out/samples.png
# Tests run in release mode: the statistical tests sample thousands of points through
# hundreds of steps, which an unoptimized build makes needlessly slow.
test: setup
	swift build $(BUILD_FLAGS) --build-tests
	swift test -c release --skip-build
	scripts/consumer-test.sh
bench: setup
	swift run -c release scoresde-bench
test-mpi: setup
	swift build $(BUILD_FLAGS) --build-tests
	swift test -c release --skip-build --filter 'MPICommandTests|MPITrainingTests|PopulationTests|DataParallelTrainingTests'

# Documentation of the library (DocC; swift-docc-plugin): HTML in .build/docs, no warnings allowed.
.PHONY: docs install uninstall
docs:
	swift package --allow-writing-to-directory .build/docs generate-documentation --target ScoreSDE \
		--warnings-as-errors --output-path .build/docs --transform-for-static-hosting --hosting-base-path ScoreSDE

# Installs scoresde, its man page and shell completions under PREFIX (default /usr/local; DESTDIR for staging).
PREFIX ?= /usr/local
BINDIR = $(DESTDIR)$(PREFIX)/bin
MANDIR = $(DESTDIR)$(PREFIX)/share/man/man1
install: setup
	swift build $(BUILD_FLAGS) --product scoresde
	scripts/generate-manual.sh .build/release/scoresde .build/man
	install -d $(BINDIR) $(MANDIR) $(DESTDIR)$(PREFIX)/share/bash-completion/completions \
		$(DESTDIR)$(PREFIX)/share/zsh/site-functions $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	install -m 755 .build/release/scoresde $(BINDIR)/scoresde
	install -m 644 .build/man/*.1 $(MANDIR)/
	.build/release/scoresde --generate-completion-script bash > $(DESTDIR)$(PREFIX)/share/bash-completion/completions/scoresde
	.build/release/scoresde --generate-completion-script zsh > $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_scoresde
	.build/release/scoresde --generate-completion-script fish > $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/scoresde.fish
uninstall:
	rm -f $(BINDIR)/scoresde $(MANDIR)/scoresde*.1 $(DESTDIR)$(PREFIX)/share/bash-completion/completions/scoresde \
		$(DESTDIR)$(PREFIX)/share/zsh/site-functions/_scoresde $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/scoresde.fish

# libFuzzer targets of every file parser (Fuzz/), each run for FUZZ_SECONDS from its seed corpus.
FUZZ_SECONDS ?= 60
fuzz: setup
	FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh
# The library's unit tests under AddressSanitizer and ThreadSanitizer (own build directories).
sanitize: setup
	scripts/sanitize.sh
