import Foundation
import ScoreSDE

/// Gaussian-mixture JSON (`--model gmm:PATH.json`): any bytes give a valid mixture or a typed
/// error; a parsed mixture samples, scores and round-trips through JSON.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzMixture(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let data = Data(bytes: start, count: count)
    guard let g = try? GaussianMixture(json: data, path: "fuzz.json") else { return 0 }
    let again = try! GaussianMixture(json: g.jsonData(), path: "re-encoded.json")
    precondition(again.means == g.means && again.stds == g.stds)
    guard g.dimension <= 256, g.means.count <= 256 else { return 0 }
    var rng = RandomSource(seed: 1)
    let x = g.sample(count: 4, using: &rng)
    precondition(x.shape == [4, g.dimension])
    let sde = try! VPSDE()
    // Extreme but finite parameters (a mean of 1e231) can overflow the score: a typed error, not a crash.
    do {
        let s = try GaussianMixtureScore(g, diffusedBy: sde).score(x, at: 0.5)
        precondition(s.shape == x.shape)
    } catch ScoreSDEError.nonFinite {
    } catch {
        preconditionFailure("the mixture score threw an untyped error: \(error)")
    }
    precondition(g.assignments(x).allSatisfy { g.means.indices.contains($0) })
    return 0
}

// SwiftPM links an executable's entry point as `<module>_main`, so libFuzzer's own `main` is not
// used: the top-level code hands the command line to libFuzzer's driver instead.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
                         _ callback: @convention(c) (UnsafeRawPointer, Int) -> CInt) -> CInt
var argc = CommandLine.argc
var argv = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzMixture))
