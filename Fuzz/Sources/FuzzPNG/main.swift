import Foundation
import ScoreSDE

/// PNG decoding through libpng: any bytes give an image or a typed error, within the decoded-size
/// bound; a decoded image re-encodes losslessly.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPNG(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let data = Data(bytes: start, count: count)
    for channels in [nil, 1, 3] as [Int?] {
        guard let image = try? PNG.decode(data, path: "fuzz.png", as: channels) else { continue }
        precondition(image.pixels.count == image.width * image.height * image.channels)
        precondition(image.pixels.count <= PNG.maxDecodedBytes)
        let again = try! PNG.decode(PNG.encode(image))
        precondition(again == image)
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
exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzPNG))
