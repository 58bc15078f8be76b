import Foundation
import ScoreSDE

/// Colour-mixing JSON (`colorize --mixing PATH.json`): any bytes give an orthonormal matrix or a
/// typed error.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzMixing(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let data = Data(bytes: start, count: count)
    guard let m = try? ColorMixing(json: data, path: "fuzz.json") else { return 0 }
    precondition(m.matrix.count == m.channels && m.inverse.count == m.channels)
    precondition(m.matrix.allSatisfy { $0.count == m.channels && $0.allSatisfy(\.isFinite) })
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
exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzMixing))
