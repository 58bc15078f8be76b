import Foundation
import ScoreSDE

/// safetensors decoding: any bytes give the tensors or a typed error; decoded tensors and metadata
/// re-encode (F64) to a file that decodes to the same.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafetensors(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let data = Data(bytes: start, count: count)
    guard let file = try? Safetensors.decode(data, path: "fuzz.safetensors") else { return 0 }
    let plain = file.tensors.map { SafetensorsTensor(name: $0.name, shape: $0.shape, values: $0.values) }
    let again = try! Safetensors.decode(Safetensors.encode(plain, metadata: file.metadata), path: "re-encoded.safetensors")
    precondition(again.metadata == file.metadata && again.tensors.count == plain.count)
    for t in plain {
        let u = again[t.name]!
        precondition(u.shape == t.shape && zip(u.values, t.values).allSatisfy { $0.bitPattern == $1.bitPattern || ($0.isNaN && $1.isNaN) })
    }
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
exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzSafetensors))
