import Foundation

/// The data files shipped in the package's resource bundle (`Sources/ScoreSDE/Resources`):
/// `digits.npy`, `china.png`, `flower.png` and their licences (`LICENSES.md`).
public enum PackagedData {
    /// The file URL of a packaged resource such as `"digits.npy"`.
    ///
    /// - Throws: ``ScoreSDEError/io(path:message:)`` when the resource bundle does not hold the file.
    public static func url(_ fileName: String) throws -> URL {
        let name = (fileName as NSString).deletingPathExtension
        let ext = (fileName as NSString).pathExtension
        if let url = Bundle.module.url(forResource: name, withExtension: ext, subdirectory: "Resources") {
            return url
        }
        let direct = Bundle.module.bundleURL.appendingPathComponent("Resources").appendingPathComponent(fileName)
        if FileManager.default.fileExists(atPath: direct.path) { return direct }
        throw ScoreSDEError.io(path: direct.path,
                               message: "packaged data file \(fileName) not found in the ScoreSDE resource bundle; reinstall or rebuild the package")
    }
}
