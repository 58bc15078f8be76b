import Foundation
import ScoreSDE

/// IDX decoding, plain and gzipped (through zlib): any bytes give an array or a typed error
/// (never a crash, never more than the 1 MiB limit allocated for values); a decoded array
/// re-encodes to a plain file that decodes to the same array, whose tensor has its shape.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzIDX(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let data = Data(bytes: start, count: count)
    let limit = 1 << 20
    let array: IDXArray
    do { array = try IDX.decode(data, path: "fuzz.idx", maximumBytes: limit) } catch {
        precondition(error is ScoreSDEError, "IDX.decode threw a non-ScoreSDEError: \(error)")
        return 0
    }
    precondition(array.payload.count == array.count * array.elementType.size && array.payload.count <= limit)
    let again = try! IDX.decode(IDX.encode(array), path: "re-encoded.idx", maximumBytes: limit)
    precondition(again == array, "re-encoding changed the array")
    let t = array.tensor()
    precondition(t.shape == array.shape && t.count == array.count)
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
exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzIDX))
