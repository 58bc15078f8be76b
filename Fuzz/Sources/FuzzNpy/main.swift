import Foundation
import ScoreSDE

/// `.npy` decoding: any bytes give a tensor or a typed error; a decoded tensor re-encodes to a
/// float64 file that decodes to the same values.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNpy(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let data = Data(bytes: start, count: count)
    guard let t = try? Npy.decode(data, path: "fuzz.npy") else { return 0 }
    let again = try! Npy.decode(Npy.encode(t), path: "re-encoded.npy")
    precondition(again.shape == t.shape && zip(again.storage, t.storage).allSatisfy { $0.bitPattern == $1.bitPattern })
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
exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzNpy))
