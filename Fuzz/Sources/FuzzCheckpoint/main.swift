import Foundation
import ScoreSDE

/// Model files and checkpoints (`--model PATH.safetensors`, `train --resume`): any bytes give a
/// model / a resumable trainer or a typed error, and never allocate beyond what the file holds.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCheckpoint(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let data = Data(bytes: start, count: count)
    guard let file = try? Safetensors.decode(data, path: "fuzz.safetensors") else { return 0 }
    for weights in ModelFile.Weights.allCases {
        guard let model = try? MLPScore.load(file, weights: weights) else { continue }
        precondition(model.parameters.allSatisfy(\.isFinite))
    }
    guard let shape = file.metadata["model.row_shape"]?.split(separator: ",").compactMap({ Int($0) }),
          !shape.isEmpty, shape.allSatisfy({ 1 ... 64 ~= $0 }), shape.reduce(1, *) <= 64 else { return 0 }
    let rows = try! Tensor(shape: [2] + shape, storage: [Double](repeating: 0.5, count: 2 * shape.reduce(1, *)))
    if let trainer = try? Trainer.resume(file, data: rows, allowDifferentData: true) {
        precondition(trainer.completedSteps >= 0)
        let again = try! Trainer.resume(Safetensors.decode(trainer.checkpointData(), path: "re-encoded"), data: rows, allowDifferentData: true)
        precondition(again.parameters == trainer.parameters)
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
exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzCheckpoint))
