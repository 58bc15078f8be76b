import Foundation
import ScoreSDE

/// `reconstruct --matrix A.npy --observation y.npy`: the input is a 2-byte little-endian length n,
/// then n bytes of A's `.npy`, then y's `.npy`. Any bytes give a measurement or a typed error.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzMeasurement(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: start, count: count)
    guard count >= 2 else { return 0 }
    let n = min(count - 2, Int(bytes[0]) | Int(bytes[1]) << 8)
    let aData = Data(bytes[2 ..< 2 + n]), yData = Data(bytes[(2 + n)...])
    guard let a = try? Npy.decode(aData, path: "A.npy"), let y = try? Npy.decode(yData, path: "y.npy") else { return 0 }
    guard a.shape.count <= 2, a.count > 0 else { return 0 }
    let d = a.shape.last!, m = a.shape.count == 2 ? a.shape[0] : 1
    let rows = (0 ..< m).map { Array(a.storage[$0 * d ..< ($0 + 1) * d]) }
    guard let measurement = try? LinearMeasurement(matrix: rows, observation: y) else { return 0 }
    precondition(measurement.measurements == m && measurement.dimension == d)
    let x = measurement.minimumNormSolution()
    precondition(x.rowSize == d)
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
exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzMeasurement))
