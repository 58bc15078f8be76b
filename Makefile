# The two commands of the README:
#   make sample   # sample the built-in 2-D ring with a PC sampler, write out/samples.png
#   make test     # run every test
#   make test-mpi # only the MPI tests (scoresde-mpi under mpirun -np 2 and 3; part of make test)
.PHONY: setup sample test test-mpi bench
# MPI stays on this machine's loopback and shared memory wherever mpirun starts (tests included).
export OMPI_MCA_btl = self,vader
export OMPI_MCA_btl_tcp_if_include = lo
export OMPI_MCA_oob_tcp_if_include = lo
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
test-mpi: setup
	swift build -c release --build-tests -Xswiftc -enable-testing
	swift test -c release --skip-build --filter 'MPICommandTests|PopulationTests'
