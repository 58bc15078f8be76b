// ScoreSDE.swift benchmarks. Release build only:
//   swift run -c release scoresde-bench [pc|ode|likelihood|mlp|inverse|mpi-train|fast|fast-adaptive|fast-versus|
//                                        fast-stochastic|fast-digits|classes|colorize|digits-quality|digits-explore|
//                                        digits-denoise|unet|diffusers PATH|all]
// Prints figures; asserts nothing. Every timing is the best of a few repetitions (wall clock).
// One entry per figure of the README (the section that cites it names the entry).
import Foundation
import ScoreSDE

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let t0 = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
}

func best(_ repeats: Int, _ body: () throws -> Void) rethrows -> Double {
    var b = Double.infinity
    for _ in 0 ..< repeats { b = min(b, try seconds(body)) }
    return b
}

func f(_ x: Double, _ digits: Int = 3) -> String { String(format: "%.\(digits)f", x) }
func e(_ x: Double) -> String { String(format: "%.2e", x) }

/// Memory-bandwidth triad `a = b + s·c` over arrays of `count` doubles, on the library's pool with
/// the grain of its element-wise loops: seconds per triad.
func triadSeconds(count: Int) -> Double {
    var a = [Double](repeating: 0, count: count)
    let b = [Double](repeating: 1, count: count), c = [Double](repeating: 2, count: count)
    let reps = max(3, 50_000_000 / max(count, 1))
    let t = best(3) {
        a.withUnsafeMutableBufferPointer { ap in
            b.withUnsafeBufferPointer { bp in
                c.withUnsafeBufferPointer { cp in
                    let x = ap.baseAddress!, y = bp.baseAddress!, z = cp.baseAddress!
                    for k in 0 ..< reps {
                        let s = 1e-9 * Double(k)
                        Parallel.forEachChunk(count, grain: 4096) { r in for i in r { x[i] = y[i] + s * z[i] } }
                    }
                }
            }
        }
    }
    precondition(a[0].isFinite)
    return t / Double(reps)
}

// MARK: - PC sampling

/// The floor of the PC figures: the PC loop of the issue-9 figures (VP, reverse diffusion + one
/// Langevin step at snr 0.16, score_sde's order: corrector then predictor at each t) written by hand
/// with the library's fused, non-allocating step kernels and no integrator around them — a reference
/// for what the library's `PCSampler` (timed beside it) costs over the bare kernels. Coefficients come from the marginals of the interval
/// (ᾱ_t / ᾱ_next = 1 − β), DDPM form: mean = (2 − √(1−β)) x + β s, x = mean + √β z.
func fusedPC(score: GaussianMixtureScore, sde: VPSDE, times: [Double], start: Tensor, using rng: inout RandomSource) throws -> Tensor {
    var x = start, s = Tensor(zeros: start.shape), z = Tensor(zeros: start.shape), mean = Tensor(zeros: start.shape)
    let snr = 0.16
    for i in 0 ..< times.count {
        let t = times[i], next = i + 1 < times.count ? times[i + 1] : 0
        let mt = sde.marginal(at: t).meanScale, mn = sde.marginal(at: next).meanScale
        let alpha = mt * mt / (mn * mn), beta = 1 - alpha
        try score.score(x, at: t, into: &s)                                      // Langevin corrector
        let (gn, zn) = Tensor.langevinNoise(&z, score: s, using: &rng)
        let r = snr * zn / gn, eps = 2 * alpha * r * r
        x.add(s, scaledBy: eps, z, scaledBy: (2 * eps).squareRoot())
        try score.score(x, at: t, into: &s)                                      // reverse-diffusion predictor
        Tensor.affineStep(&x, mean: &mean, xScale: 2 - (1 - beta).squareRoot(), score: s, scoreScale: beta,
                          noise: beta.squareRoot(), using: &rng)
    }
    return mean
}

func pcBenchmark(_ name: String, _ mixture: GaussianMixture, count: Int) throws {
    let sde = try VPSDE(), eps = 1e-3, steps = 1000
    let score = GaussianMixtureScore(mixture, diffusedBy: sde)
    let grid = try TimeGrid.uniform(steps: steps, from: sde.T, to: eps)
    let times = Array(grid.times.prefix(steps))
    let threads = Parallel.threadCount
    var prior = RandomSource(seed: 2)
    let start = sde.samplePrior(rowShape: [mixture.dimension], count: count, using: &prior)
    // The library's sampler, as a user runs it (PCSampler → ReverseIntegrator → ReverseDiffusion and
    // Langevin through the ReverseSDE that counts NFE), from the same start as the floor.
    let sampler = PCSampler(sde: sde, score: score, grid: grid, predictor: ReverseDiffusion(), corrector: try Langevin(snr: 0.16))
    func library() throws -> Tensor { var rng = RandomSource(seed: 1); return try sampler.sample(from: start, using: &rng).samples }
    func floor() throws -> Tensor { var rng = RandomSource(seed: 1); return try fusedPC(score: score, sde: sde, times: times, start: start, using: &rng) }
    // Best of 7 for each, the two interleaved so that a change in the machine's load hits both alike.
    func timed(_ t: Int) throws -> (library: Double, floor: Double, samples: Tensor, floorSamples: Tensor) {
        var lib = Double.infinity, flo = Double.infinity
        var samples = start, floorSamples = start
        try Parallel.$threadLimit.withValue(t) {
            for _ in 0 ..< 7 {
                lib = min(lib, try seconds { samples = try library() })
                flo = min(flo, try seconds { floorSamples = try floor() })
            }
        }
        return (lib, flo, samples, floorSamples)
    }
    let all = try timed(threads), one = try timed(1)
    precondition(all.samples == one.samples, "the library's sampler must give the same bits on 1 and \(threads) threads")
    precondition(all.floorSamples == one.floorSamples, "the fused loop must give the same bits on 1 and \(threads) threads")
    let gap = zip(all.samples.storage, all.floorSamples.storage).map { abs($0 - $1) }.max() ?? 0
    // The score alone: the same number of calls at the same times, into one buffer.
    var out = Tensor(zeros: start.shape)
    let scoreTime = try best(3) { for t in times { try score.score(start, at: t, into: &out); try score.score(start, at: t, into: &out) } }
    let nfe = 2 * steps
    // Array passes per step of the solver's own work (n×D doubles each): langevinNoise writes z and
    // reads s (2); the Langevin update reads x, s, z and writes x (4); affineStep reads x, s and
    // writes mean, x (4). The normals are drawn in cache, on top of those passes.
    let passes = 10.0
    let triad = triadSeconds(count: count * mixture.dimension)
    let triadPerPass = triad / 3
    func solverPerStep(_ wall: Double) -> Double { max(0, wall - scoreTime) / Double(steps) }
    let (m, sd) = sde.marginal(at: eps)
    var er = RandomSource(seed: 9)
    let sw = try slicedWassersteinDistance(all.samples, mixture.diffused(meanScale: m, std: sd).sample(count: count, using: &er))
    print("PC \(name) (VP, N = \(steps), reverse diffusion + Langevin snr 0.16, \(count) samples, NFE \(nfe), SIMD level \(Parallel.simdLevelName))")
    print("  library PCSampler: \(f(all.library)) s on \(threads) threads, \(f(one.library)) s on 1 -> \(f(one.library / all.library, 2))x thread scaling; sliced W2 to exact samples of p_eps \(f(sw, 4))")
    print("  floor (the same loop fused by hand from the library's step kernels, no integrator): \(f(all.floor)) s on \(threads) threads, \(f(one.floor)) s on 1")
    print("  library / floor: \(f(all.library / all.floor, 3))x on \(threads) threads, \(f(one.library / one.floor, 3))x on 1 (target <= 1.15x); samples agree to \(e(gap)) (coefficients rounded differently)")
    print("  score: \(f(scoreTime)) s total, \(f(scoreTime / Double(nfe) * 1e6, 1)) µs per batched evaluation")
    print("  library's own work besides the score: \(f(solverPerStep(all.library) * 1e6, 1)) µs per step vs \(f(passes * triadPerPass * 1e6, 1)) µs for a triad over the same bytes (\(Int(passes)) array passes) -> \(f(solverPerStep(all.library) / (passes * triadPerPass), 2))x (floor: \(f(solverPerStep(all.floor) / (passes * triadPerPass), 2))x)")
    print("  triad bandwidth at this size: \(f(Double(3 * 8 * count * mixture.dimension) / triad / 1e9, 1)) GB/s")
}

/// The issue-9 figures as whole processes: the CLI's PC ring run and 64-D run (best of 5 each).
func wholeProcess() {
    let exe = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("scoresde")
    guard FileManager.default.isExecutableFile(atPath: exe.path) else {
        print("whole process: build the CLI first (swift build -c release --product scoresde)")
        return
    }
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("scoresde-bench-\(getpid())")
    try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    func run(_ args: [String]) -> Double {
        best(5) {
            let p = Process()
            p.executableURL = exe
            p.arguments = args + ["--output", dir.appendingPathComponent("s.npy").path]
            p.standardOutput = FileHandle.nullDevice
            try? p.run()
            p.waitUntilExit()
        }
    }
    let ring = ["sample", "--model", "ring", "--sde", "vp", "--count", "4096"]
    let g64 = ["sample", "--model", "gmm64", "--sde", "vp", "--count", "1024"]
    let r2 = run(ring), r1 = run(ring + ["--threads", "1"]), g = run(g64)
    print("whole process (best of 5; the JAX reference: 0.53 s ring, ~0.5 s 64-D on this machine kind):")
    print("  scoresde \(ring.joined(separator: " ")): \(f(r2)) s (\(f(0.53 / r2, 1))x the reference); --threads 1: \(f(r1)) s -> \(f(r1 / r2, 2))x thread scaling")
    print("  scoresde \(g64.joined(separator: " ")): \(f(g)) s (\(f(0.5 / g, 1))x the reference)")
}

// MARK: - ODE sampling

func odeBenchmark() throws {
    let sde = try VPSDE(), eps = 1e-3
    let ring = GaussianMixture.ring()
    let score = GaussianMixtureScore(ring, diffusedBy: sde)
    var er = RandomSource(seed: 11)
    // Exact samples of p_eps: the ODE's target at its end time.
    let (m, s) = sde.marginal(at: eps)
    let exact = ring.diffused(meanScale: m, std: s).sample(count: 4096, using: &er)
    print("ODE sampling, ring, VP, eps 1e-3: NFE / wall seconds / sliced W2 to exact samples of p_eps")
    print("  step    tol     | batch (4096 as one system)      | per-sample (1024, own steps; NFE per sample)")
    for step in [ODEStepType.rk2, .rk4, .rkf45, .rkck, .rk8pd, .msadams] {
        for tol in [1e-3, 1e-4, 1e-5, 1e-6] {
            let opts = ODESolverOptions(step, absoluteTolerance: tol, relativeTolerance: tol)
            var line = "  \(step.rawValue.padding(toLength: 7, withPad: " ", startingAt: 0)) \(e(tol)) |"
            for (layout, count) in [(ODESystemLayout.batch, 4096), (.perSample, 1024)] {
                let sampler = ODESampler(sde: sde, score: score, eps: eps, solver: opts, layout: layout)
                var out: ODEResult?
                let wall = try best(1) { var rng = RandomSource(seed: 1); out = try sampler.sample(count: count, using: &rng) }
                let sw = try slicedWassersteinDistance(out!.states, exact)
                let nfe = layout == .batch ? Double(out!.scoreEvaluations) : Double(out!.scoreEvaluations) / Double(count)
                line += " NFE \(f(nfe, 0).padding(toLength: 5, withPad: " ", startingAt: 0)) \(f(wall, 3)) s SW \(f(sw, 4)) |"
            }
            print(line)
        }
    }
}

/// NFE each sampler needs for a given quality, on the ring and the 64-D mixture.
func odeVersusPC() throws {
    for (name, mixture, count) in [("ring", GaussianMixture.ring(), 4096), ("gmm64", GaussianMixture.gaussian64(), 1024)] {
        let sde = try VPSDE(), eps = 1e-3
        let score = GaussianMixtureScore(mixture, diffusedBy: sde)
        let (m, s) = sde.marginal(at: eps)
        var er = RandomSource(seed: 12)
        let exact = mixture.diffused(meanScale: m, std: s).sample(count: count, using: &er)
        var er2 = RandomSource(seed: 13)
        let floor = try slicedWassersteinDistance(mixture.diffused(meanScale: m, std: s).sample(count: count, using: &er2), exact)
        print("NFE vs quality, \(name) (VP, eps 1e-3, \(count) samples; SW of a second exact sample: \(f(floor, 4)))")
        for n in [25, 50, 100, 250, 500, 1000] {
            let pc = PCSampler(sde: sde, score: score, grid: try .uniform(steps: n, from: 1, to: eps),
                               predictor: ReverseDiffusion(), corrector: try Langevin(snr: 0.16), denoising: .none)
            var rng = RandomSource(seed: 3)
            let run = try pc.sample(count: count, using: &rng)
            let em = PCSampler(sde: sde, score: score, grid: try .uniform(steps: 2 * n, from: 1, to: eps),
                               predictor: EulerMaruyama(), corrector: NoCorrector(), denoising: .none)
            var rng2 = RandomSource(seed: 3)
            let run2 = try em.sample(count: count, using: &rng2)
            print("  PC RD+Langevin N=\(n): NFE \(run.scoreEvaluations), SW \(f(try slicedWassersteinDistance(run.samples, exact), 4));  EM N=\(2 * n): NFE \(run2.scoreEvaluations), SW \(f(try slicedWassersteinDistance(run2.samples, exact), 4))")
        }
        for step in [ODEStepType.rkf45, .rk8pd] {
            for tol in [1e-2, 1e-3, 1e-4, 1e-5] {
                let ode = ODESampler(sde: sde, score: score, eps: eps, solver: ODESolverOptions(step, absoluteTolerance: tol, relativeTolerance: tol))
                var rng = RandomSource(seed: 3)
                let run = try ode.sample(count: count, using: &rng)
                print("  ODE \(step.rawValue) tol \(e(tol)): NFE \(run.scoreEvaluations), SW \(f(try slicedWassersteinDistance(run.states, exact), 4))")
            }
        }
    }
}

// MARK: - Likelihood

func likelihoodBenchmark() throws {
    let sde = try VPSDE()
    let mixture = GaussianMixture.gaussian64()
    let score = GaussianMixtureScore(mixture, diffusedBy: sde)
    var rng = RandomSource(seed: 5)
    let x = mixture.sample(count: 256, using: &rng)
    let truth = try score.logDensity(x, at: 1e-5)
    print("Likelihood, gmm64 (D = 64), 256 points, VP, eps 1e-5, rtol = atol = 1e-5 (exact terminal density)")
    for est in [DivergenceEstimator.exact, .rademacher(probes: 1)] {
        for (step, layout) in [(ODEStepType.rkf45, ODESystemLayout.batch), (.rk8pd, .batch), (.rkf45, .perSample)] {
            let ll = Likelihood(sde: sde, score: score, estimator: est, eps: 1e-5,
                                solver: ODESolverOptions(step, absoluteTolerance: 1e-5, relativeTolerance: 1e-5), layout: layout,
                                terminalLogDensity: { try score.logDensity($0, at: 1) })
            var result: LikelihoodResult?
            let wall = try best(3) { var r = RandomSource(seed: 6); result = try ll.evaluate(x, using: &r) }
            let err = zip(result!.logLikelihood, truth).map { abs($0 - $1) }
            print("  \(est) \(step.rawValue) \(layout): \(f(wall, 4)) s (\(e(wall / 256)) s/sample), NFE \(result!.scoreEvaluations), max |error| \(e(err.max()!)) nats, mean \(e(err.mean()))")
        }
    }
}

// MARK: - Learned score network (MLP)

/// Row-major `C = A · Bᵀ + C` (A: m × k, B: n × k, C: m × n) on the library's BLAS backend, exactly the
/// call the network's Linear layers make (`BLAS.gemm(transB: true, ...)`, accumulating into the bias).
func gemmABt(_ a: UnsafePointer<Double>, _ b: UnsafePointer<Double>, _ c: UnsafeMutablePointer<Double>, m: Int, n: Int, k: Int) {
    BLASBackend.gemm(transB: true, m: m, n: n, k: k, a: a, lda: k, b: b, ldb: k, beta: 1, c: c, ldc: n)
}

/// Seconds of `dgemm_` alone for one pass over the products `shapes` (`m × k · (n × k)ᵀ` each; best of 3).
func gemmSeconds(_ shapes: [(m: Int, n: Int, k: Int)]) -> Double {
    let maxA = shapes.map { $0.m * $0.k }.max()!, maxB = shapes.map { $0.n * $0.k }.max()!, maxC = shapes.map { $0.m * $0.n }.max()!
    var rng = RandomSource(seed: 21)
    let a = Tensor.standardNormal(shape: [maxA], using: &rng).storage, b = Tensor.standardNormal(shape: [maxB], using: &rng).storage
    var c = [Double](repeating: 0, count: maxC)
    let work = shapes.reduce(0.0) { $0 + 2 * Double($1.m * $1.n * $1.k) }
    let reps = max(3, Int(2e9 / work))
    let t = best(3) {
        a.withUnsafeBufferPointer { ap in
            b.withUnsafeBufferPointer { bp in
                c.withUnsafeMutableBufferPointer { cp in
                    for _ in 0 ..< reps {
                        for s in shapes { gemmABt(ap.baseAddress!, bp.baseAddress!, cp.baseAddress!, m: s.m, n: s.n, k: s.k) }
                    }
                }
            }
        }
    }
    return t / Double(reps)
}

/// The forward pass's matrix products at one time for `n` rows, as `MLPScore` makes them: in chunks of
/// at most 1024 rows (`MLPScore.chunkRows`), input `D → H`, per block two `H → H` (the time embedding is
/// folded into biases), output `H → D`.
func inferenceShapes(_ a: MLPArchitecture, rows n: Int) -> [(m: Int, n: Int, k: Int)] {
    let d = a.dimension, h = a.hiddenWidth
    return stride(from: 0, to: n, by: 1024).flatMap { lo -> [(m: Int, n: Int, k: Int)] in
        let r = min(1024, n - lo)
        return [(r, h, d)] + Array(repeating: (r, h, h), count: 2 * a.residualBlocks) + [(r, d, h)]
    }
}

func flops(_ shapes: [(m: Int, n: Int, k: Int)]) -> Double { shapes.reduce(0.0) { $0 + 2 * Double($1.m * $1.n * $1.k) } }

func mlpBenchmark() throws {
    let coretype = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] ?? "(unset)"
    print("MLP score network: BLAS \(BLASBackend.current) [OPENBLAS_CORETYPE=\(coretype)]; \(Parallel.threadCount) ScoreSDE threads")
    let square = [(m: 1024, n: 1024, k: 1024)]
    print("  dgemm_ alone, 1024 x 1024 x 1024: \(f(flops(square) / gemmSeconds(square) / 1e9, 1)) GFLOP/s (the machine's BLAS ceiling)")

    let digitsShape = MLPArchitecture(rowShape: [1, 8, 8], hiddenWidth: 256, residualBlocks: 2, fourierFeatures: 64)
    let moonsShape = MLPArchitecture(rowShape: [2], hiddenWidth: 64, residualBlocks: 2, fourierFeatures: 16, fourierScale: 4)
    let shipped = try? PretrainedModels.digitsMLP()

    // Forward pass (score at one time) vs dgemm_ alone on the same products.
    print("  forward pass (score of n rows at one t): products' GFLOP/s over the whole pass vs dgemm_ alone on the same shapes")
    var nets = [("Toy2D example net D=2 H=64 L=2", moonsShape, 2000), ("digits net D=64 H=256 L=2", digitsShape, 128),
                ("digits net D=64 H=256 L=2", digitsShape, 1024)]
    if let a = shipped?.architecture {
        nets.append(("shipped digits model D=64 H=\(a.hiddenWidth) L=\(a.residualBlocks)", a, 1024))
    }
    for (name, arch, n) in nets {
        let model = try MLPScore(architecture: arch, sde: .vp(betaMin: 0.1, betaMax: 20), seed: 3)
        var rng = RandomSource(seed: 4)
        let x = Tensor.standardNormal(shape: [n] + arch.rowShape, using: &rng)
        let shapes = inferenceShapes(arch, rows: n)
        let work = flops(shapes)
        let reps = max(3, Int(1e9 / work))
        let pass = try best(3) { for _ in 0 ..< reps { _ = try model.score(x, at: 0.5) } } / Double(reps)
        let gemm = gemmSeconds(shapes)
        print("    \(name), n = \(n): \(f(pass * 1e3, 3)) ms per pass, \(f(work / pass / 1e9, 1)) GFLOP/s; dgemm_ alone \(f(gemm * 1e3, 3)) ms, \(f(work / gemm / 1e9, 1)) GFLOP/s (products are \(f(100 * gemm / pass, 0))% of the pass)")
        let model32 = model.withPrecision(.float32)
        let pass32 = try best(3) { for _ in 0 ..< reps { _ = try model32.score(x, at: 0.5) } } / Double(reps)
        print("      float32 (--precision f32): \(f(pass32 * 1e3, 3)) ms per pass, \(f(work / pass32 / 1e9, 1)) GFLOP/s (\(f(pass / pass32, 2))x float64)")
    }

    // Training: Trainer.step (DSM loss, backward, Adam, EMA).
    print("  training (Trainer.step: minibatch draw, forward + backward, Adam, EMA)")
    var moonsRNG = RandomSource(seed: 5)
    let moons = try Toy2D.moons(count: 10_000, using: &moonsRNG)
    let digits = try Digits.load(split: .train).images
    for (name, arch, data, batch, scaling) in [("Toy2D example net D=2 H=64 L=2", moonsShape, moons, 256, DataScaling.identity),
                                               ("digits net D=64 H=256 L=2", digitsShape, digits, 128, try DataScaling(scale: 1.0 / 16))] {
        for precision in [MLPPrecision.float64, .float32] {
            let config = TrainingConfiguration(sde: .vp(betaMin: 0.1, betaMax: 20), architecture: arch,
                                               dataScaling: scaling, seed: 6, batchSize: batch, warmup: 100, precision: precision)
            let trainer = try Trainer(configuration: config, data: data)
            try trainer.train(steps: 20)
            let steps = 200
            let wall = try best(3) { try trainer.train(steps: steps) }
            // Per row: forward products with the time embedding per row (2F → H, L × H → H), then ≈ 2× that backward.
            let d = arch.dimension, h = arch.hiddenWidth, l = arch.residualBlocks
            let perRow = 2.0 * Double(2 * arch.fourierFeatures * h + l * h * h + d * h + 2 * l * h * h + h * d)
            let gflops = 3 * perRow * Double(batch * steps) / wall / 1e9
            print("    \(name), batch \(batch), \(precision.rawValue): \(f(wall / Double(steps) * 1e3, 2)) ms per step, \(f(Double(batch * steps) / wall, 0)) examples/s, ~\(f(gflops, 1)) GFLOP/s (3x forward products)")
        }
    }

    // Sampling: PC sampler (reverse diffusion + Langevin) with the network.
    let sde = try VPSDE(betaMin: 0.1, betaMax: 20)
    let model = try shipped ?? MLPScore(architecture: digitsShape, sde: .vp(betaMin: 0.1, betaMax: 20), seed: 7)
    for precision in [MLPPrecision.float64, .float32] {
        let sampler = PCSampler(sde: sde, score: model.withPrecision(precision), grid: try .uniform(steps: 100, from: 1, to: 1e-3),
                                predictor: ReverseDiffusion(), corrector: try Langevin(snr: 0.16))
        for count in [64, 1024] {
            var nfe = 0
            let wall = try best(2) { var rng = RandomSource(seed: 8); nfe = try sampler.sample(count: count, using: &rng).scoreEvaluations }
            print("  sampling, \(shipped == nil ? "fresh digits-shaped network (H=256)" : "shipped digits model"), \(precision.rawValue), PC reverse diffusion + Langevin, 100 steps (NFE \(nfe)), \(count) samples: \(f(wall, 2)) s, \(f(Double(count) / wall, 0)) samples/s, \(f(Double(count * nfe) / wall, 0)) row-evaluations/s")
        }
    }
}

// MARK: - Inverse problems

/// Inpainting gmm64 (a random half of the 64 coordinates known) with each conditioning method:
/// cost (NFE, model passes, wall, the constraint's overhead over unconditional sampling) and
/// accuracy against the exact posterior (mode-weight TV; the posterior has one dominant mode).
func inverseBenchmark() throws {
    let sde = try VESDE()
    let prior = GaussianMixture.gaussian64()
    let base = GaussianMixtureScore(prior, diffusedBy: sde)
    var rng = RandomSource(seed: 11)
    let truth = prior.sample(count: 1, using: &rng)
    var coin = rng.stream(draw: rng.nextDraw(), row: 0)
    let known = (0 ..< 64).filter { _ in coin.next() >> 63 == 1 }, unknown = (0 ..< 64).filter { !known.contains($0) }
    let inpainting = try Inpainting(known: known, values: known.map { truth.storage[$0] }, dimension: 64)
    let measurement = try inpainting.measurement()
    let posterior = try measurement.posterior(of: prior)
    let free = try posterior.marginal(unknown)
    let grid = try TimeGrid.uniform(steps: 400, from: sde.T, to: 1e-5)
    let count = 256
    func tv(_ x: Tensor) throws -> Double {
        var cols = [Double]()
        for r in 0 ..< x.rows { for j in unknown { cols.append(x.storage[r * 64 + j]) } }
        var counts = [Double](repeating: 0, count: posterior.componentCount)
        for a in try free.assignments(Tensor(shape: [x.rows, unknown.count], storage: cols)) { counts[a] += 1 }
        return zip(counts, posterior.weights).reduce(0) { $0 + abs($1.0 / Double(x.rows) - $1.1) } / 2
    }
    print("Inverse problems: gmm64 inpainting, \(known.count) of 64 coordinates known, \(count) samples, VE, 400 steps, RD + Langevin")
    print("  exact posterior: largest mode weight \(f(posterior.weights.max()!, 4))")
    func run<M: ScoreModel>(_ name: String, _ score: M, constraint: (any SamplingConstraint)?, resampling: Resampling = .none,
                            passes: (Int) -> Int = { $0 }, repeats: Int = 2) throws {
        let sampler = PCSampler(sde: sde, score: score, grid: grid, predictor: ReverseDiffusion(), corrector: try Langevin(snr: 0.16),
                                constraint: constraint, resampling: resampling)
        var result: SamplingResult?
        let wall = try best(repeats) { var r = RandomSource(seed: 12); result = try sampler.sample(count: count, using: &r) }
        let nfe = result!.scoreEvaluations
        let accuracy = constraint == nil && name.hasPrefix("unconditional") ? "" : ", mode-weight TV \(f(try tv(result!.samples), 3))"
        print("  \(name): NFE \(nfe), model passes \(passes(nfe)), \(f(wall, 3)) s (\(f(wall / Double(nfe) * 1e6, 1)) µs per NFE)\(accuracy)")
    }
    try run("unconditional (cost reference)", base, constraint: nil)
    try run("replace (paper)", base, constraint: inpainting)
    try run("replace (reference)", base, constraint: try Inpainting(known: known, values: known.map { truth.storage[$0] }, dimension: 64, convention: .reference))
    try run("repaint 4x10", base, constraint: inpainting, resampling: try Resampling(count: 4, jumpLength: 10))
    let variance = (0 ..< 64).map { FullCovarianceMixture(prior).covariance[$0][$0] }.reduce(0, +) / 64
    try run("pigdm (Jacobian-free)", try MeasurementGuidedScore(base: base, sde: sde, measurement: measurement,
                                                                likelihood: .pseudoinverse(dataVariance: variance, jacobianFree: true)), constraint: nil)
    try run("tweedie moments", try MeasurementGuidedScore(base: base, sde: sde, measurement: measurement, likelihood: .tweedieCovariance),
            constraint: nil, passes: { $0 * (known.count + 2) }, repeats: 1)
}

let which = CommandLine.arguments.dropFirst().first ?? "all"
if which == "pc" || which == "all" {
    try pcBenchmark("ring", .ring(), count: 4096)
    try pcBenchmark("gmm64", .gaussian64(), count: 1024)
    wholeProcess()
}
if which == "ode" || which == "all" { try odeBenchmark(); try odeVersusPC() }
if which == "likelihood" || which == "all" { try likelihoodBenchmark() }
if which == "mlp" || which == "all" { try mlpBenchmark() }
if which == "inverse" || which == "all" { try inverseBenchmark() }
if which == "mpi-train" || which == "all" { try mpiTrainingBenchmark() }
if which == "fast" || which == "all" { try fastBenchmark(only: CommandLine.arguments.count > 2 ? Array(CommandLine.arguments.dropFirst(2)) : nil) }
if which == "fast-adaptive" || which == "fast" || which == "all" { try adaptiveUniPCBenchmark(only: which == "fast-adaptive" && CommandLine.arguments.count > 2 ? Array(CommandLine.arguments.dropFirst(2)) : nil) }
if which == "fast-versus" || which == "fast" || which == "all" { try recommendedVersusDPM() }
if which == "fast-stochastic" || which == "fast" || which == "all" { try stochasticBenchmark() }
if which == "fast-digits" || which == "fast" || which == "all" { try digitsFewStepBenchmark() }
if which == "classes" || which == "all" { try classesBenchmark() }
if which == "colorize" || which == "all" { try colorizationBenchmark() }
if which == "digits-denoise" { try digitsDenoiseDiagnostic(paths: Array(CommandLine.arguments.dropFirst(2))) }
if which == "digits-explore" { try digitsQualityExplore(path: CommandLine.arguments.count > 2 ? CommandLine.arguments[2] : "digits-mlp", only: CommandLine.arguments.count > 3 ? Array(CommandLine.arguments.dropFirst(3)) : nil) }
if which == "digits-quality" || which == "all" { try digitsQualityBenchmark(paths: Array(CommandLine.arguments.dropFirst(2))) }
if which == "unet" || which == "all" { try unetBenchmark(arguments: Array(CommandLine.arguments.dropFirst(2))) }
if which == "diffusers" { try diffusersBenchmark(arguments: Array(CommandLine.arguments.dropFirst(2))) }
if which == "fashion-inverse" {
    do { try fashionInverseBenchmark(arguments: Array(CommandLine.arguments.dropFirst(2))) } catch {
        fputs("error: \(error)\n", stderr)
        exit(1)
    }
}
