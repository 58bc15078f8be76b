import CKernels
import COpenBLAS
#if canImport(Glibc)
import Glibc
#endif

/// The double-precision BLAS that runs ScoreSDE's matrix products, and why it was chosen.
///
/// Debian ships two maintained BLAS libraries with run-time kernel selection, and each picks its
/// kernels from a table of CPU models, so each misses some current CPUs (measured, `dgemm`
/// 1024×256·256×256 on one thread, GFLOP/s):
///
/// | CPU | OpenBLAS 0.3.21, nothing set | BLIS 0.9 |
/// | --- | --- | --- |
/// | AMD EPYC, family 1Ah (AVX-512) | Cooperlake kernels, 48.7 | `generic`, 14.1 |
/// | Intel Xeon with AVX-512 and AMX | `Prescott` (generic SSE3), several times slower | `skx` / `haswell` by its feature checks |
///
/// (BLIS's `skx` kernels run at 43.8 on the AMD machine, OpenBLAS's SkylakeX at 45.0, Haswell at 31.2.)
/// So the library links OpenBLAS and, only when OpenBLAS fell back to a kernel older than AVX2 on a
/// CPU that has AVX2, uses BLIS (loaded at run time from Debian's `libblis4-*` packages) if BLIS
/// found a real sub-configuration. Nothing reads or writes `OPENBLAS_CORETYPE` except OpenBLAS:
/// when a user has set it, they chose OpenBLAS's kernels and OpenBLAS is kept.
/// `SCORESDE_BLAS=openblas|blis` forces one library (the benchmark and tests compare them).
///
/// Every process of a run (the CLI, the library in a test, each MPI rank) applies the same rule to
/// the same machine and environment, so they use the same kernels and give the same bytes.
public struct BLASBackend: Sendable, Equatable, CustomStringConvertible {
    public enum Library: String, Sendable { case openBLAS = "OpenBLAS", blis = "BLIS" }

    /// The library whose `dgemm` runs the products.
    public let library: Library
    /// The kernel set it uses: OpenBLAS's core name or BLIS's sub-configuration.
    public let kernel: String
    /// Why this library was chosen.
    public let reason: String

    /// The backend in use (chosen once, at the first matrix product or the first query).
    public static var current: BLASBackend { BLAS.implementation.backend }

    public var description: String { "\(library.rawValue) (\(kernel) kernels): \(reason)" }

    /// Row-major `C = alpha · op(A) · op(B) + beta · C` on the chosen library, exactly as the
    /// library's networks call it (for benchmarks and users' own layers): `op(A)` is `m × k`,
    /// `op(B)` is `k × n`; `lda`, `ldb`, `ldc` are row strides as stored.
    public static func gemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                            alpha: Double = 1, a: UnsafePointer<Double>, lda: Int, b: UnsafePointer<Double>, ldb: Int,
                            beta: Double = 0, c: UnsafeMutablePointer<Double>, ldc: Int) {
        BLAS.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                  beta: beta, c: c, ldc: ldc)
    }

    /// OpenBLAS core names (0.3.21, x86-64) whose double-precision kernels use AVX2 or AVX-512.
    static let modernOpenBLASCores: Set<String> = ["haswell", "zen", "skylakex", "cooperlake", "sapphirerapids"]

    /// The selection rule, as a pure function of what the process sees (tested on its own).
    /// - Parameters:
    ///   - requested: `SCORESDE_BLAS` (`openblas` or `blis`), if set.
    ///   - coreTypeSet: whether `OPENBLAS_CORETYPE` is set in the environment.
    ///   - openBLASCore: the core OpenBLAS chose.
    ///   - cpuHasAVX2: whether the CPU supports AVX2 and FMA.
    ///   - blisConfig: BLIS's sub-configuration, or nil when no BLIS library could be loaded.
    static func choose(requested: String?, coreTypeSet: Bool, openBLASCore: String, cpuHasAVX2: Bool,
                       blisConfig: () -> String?) -> (Library, String) {
        switch requested?.lowercased() {
        case "openblas": return (.openBLAS, "SCORESDE_BLAS=openblas")
        case "blis":
            if blisConfig() != nil { return (.blis, "SCORESDE_BLAS=blis") }
            return (.openBLAS, "SCORESDE_BLAS=blis, but no BLIS library was found (install libblis4-pthread); using OpenBLAS")
        default: break
        }
        if coreTypeSet { return (.openBLAS, "OPENBLAS_CORETYPE is set in the environment: OpenBLAS's kernels as chosen there") }
        if modernOpenBLASCores.contains(openBLASCore.lowercased()) { return (.openBLAS, "OpenBLAS recognised this CPU") }
        if !cpuHasAVX2 { return (.openBLAS, "the CPU has no AVX2: OpenBLAS's kernel for it") }
        guard let config = blisConfig() else {
            return (.openBLAS, "OpenBLAS fell back to its \(openBLASCore) kernel on an AVX2 CPU and no BLIS library was found (install libblis4-pthread)")
        }
        if config == "generic" {
            return (.openBLAS, "OpenBLAS fell back to its \(openBLASCore) kernel and BLIS to its generic one: OpenBLAS")
        }
        return (.blis, "OpenBLAS fell back to its \(openBLASCore) kernel on an AVX2 CPU; BLIS recognised it")
    }
}

/// Row-major matrix products through the chosen library's Fortran `dgemm_` (see ``BLASBackend``).
enum BLAS {
    /// The Fortran `dgemm_` entry point, as both libraries export it (32-bit integers, no hidden
    /// string lengths).
    typealias Dgemm = @convention(c) (
        UnsafeMutablePointer<CChar>?, UnsafeMutablePointer<CChar>?,
        UnsafeMutablePointer<blasint>?, UnsafeMutablePointer<blasint>?, UnsafeMutablePointer<blasint>?,
        UnsafeMutablePointer<Double>?, UnsafeMutablePointer<Double>?, UnsafeMutablePointer<blasint>?,
        UnsafeMutablePointer<Double>?, UnsafeMutablePointer<blasint>?,
        UnsafeMutablePointer<Double>?, UnsafeMutablePointer<Double>?, UnsafeMutablePointer<blasint>?) -> Void

    struct Implementation: @unchecked Sendable {
        let backend: BLASBackend
        let dgemm: Dgemm
    }

    /// Chosen once (Swift initialises a static `let` exactly once, thread-safely).
    static let implementation: Implementation = {
        let env = { (name: String) in getenv(name).map { String(cString: $0) } }
        let core = openblas_get_corename().map { String(cString: $0) } ?? "unknown"
        let blis = BLISLibrary.load
        let (library, reason) = BLASBackend.choose(
            requested: env("SCORESDE_BLAS"), coreTypeSet: env("OPENBLAS_CORETYPE") != nil, openBLASCore: core,
            cpuHasAVX2: sde_cpu_level() >= 1, blisConfig: { blis()?.config })
        if library == .blis, let b = blis() {
            return Implementation(backend: BLASBackend(library: .blis, kernel: b.config, reason: reason), dgemm: b.dgemm)
        }
        return Implementation(backend: BLASBackend(library: .openBLAS, kernel: core, reason: reason), dgemm: dgemm_)
    }()

    /// `C = alpha · op(A) · op(B) + beta · C`, all row-major: `op(A)` is `m × k`, `op(B)` is `k × n`,
    /// `C` is `m × n`; `lda`, `ldb`, `ldc` are the row strides of A, B, C as stored.
    static func gemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                     alpha: Double = 1, a: UnsafePointer<Double>, lda: Int,
                     b: UnsafePointer<Double>, ldb: Int,
                     beta: Double = 0, c: UnsafeMutablePointer<Double>, ldc: Int) {
        // Row-major C = op(A) op(B) is column-major Cᵀ = op(B)ᵀ op(A)ᵀ: swap the operands.
        var ta: CChar = transB ? 84 : 78, tb: CChar = transA ? 84 : 78   // "T" / "N"
        var mm = blasint(n), nn = blasint(m), kk = blasint(k)
        var al = alpha, be = beta
        var l1 = blasint(ldb), l2 = blasint(lda), l3 = blasint(ldc)
        implementation.dgemm(&ta, &tb, &mm, &nn, &kk, &al, UnsafeMutablePointer(mutating: b), &l1,
                             UnsafeMutablePointer(mutating: a), &l2, &be, c, &l3)
    }
}

/// BLIS, loaded at run time from Debian's `libblis4-pthread` (or `-openmp`, `-serial`), whose
/// libraries live in a folder of their own (`/usr/lib/<triple>/blis-*/`), outside the linker's path.
/// Loaded with `RTLD_LOCAL`, so its `dgemm_` never replaces OpenBLAS's for other callers (GSL).
enum BLISLibrary {
    struct Loaded { let config: String; let dgemm: BLAS.Dgemm }

    static func load() -> Loaded? { loaded.value }

    private final class Box: @unchecked Sendable { let value: Loaded?; init(_ v: Loaded?) { value = v } }
    private static let loaded = Box(open())

    static var candidatePaths: [String] {
        #if arch(x86_64)
        let triple = "x86_64-linux-gnu"
        #elseif arch(arm64)
        let triple = "aarch64-linux-gnu"
        #else
        let triple = ""
        #endif
        return ["blis-pthread", "blis-openmp", "blis-serial"].map { "/usr/lib/\(triple)/\($0)/libblis.so.4" } + ["libblis.so.4"]
    }

    private static func open() -> Loaded? {
        #if os(Linux)
        for path in candidatePaths {
            guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) else { continue }
            typealias QueryID = @convention(c) () -> Int32
            typealias ArchString = @convention(c) (Int32) -> UnsafePointer<CChar>?
            typealias SetThreads = @convention(c) (Int) -> Void
            guard let g = dlsym(handle, "dgemm_"), let q = dlsym(handle, "bli_arch_query_id"),
                  let s = dlsym(handle, "bli_arch_string") else { dlclose(handle); continue }
            let id = unsafeBitCast(q, to: QueryID.self)()
            let config = unsafeBitCast(s, to: ArchString.self)(id).map { String(cString: $0) } ?? "unknown"
            // One thread: BLIS's threaded gemm synchronises its threads with a spinning barrier,
            // which collapses when the cores are shared (measured on 2 cores under a load of 14:
            // 176×176·176×64 took 161 ms per call on 2 threads, 0.53 ms on one).
            if let t = dlsym(handle, "bli_thread_set_num_threads") {
                unsafeBitCast(t, to: SetThreads.self)(1)
            }
            return Loaded(config: config, dgemm: unsafeBitCast(g, to: BLAS.Dgemm.self))
        }
        #endif
        return nil
    }
}
