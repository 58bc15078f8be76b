import Foundation

/// Loading a ``FeatureClassifier`` by shipped name or from a file: the one place that maps a
/// classifier file's kind (its safetensors metadata `classifier.kind`) to the type that reads it.
///
///     let classifier = try FeatureClassifiers.load(nameOrPath: "fashion-classifier")
///     let other = try FeatureClassifiers.load(nameOrPath: "runs/classifier.safetensors")
///
/// Kinds that load here: `conv`, the ``ConvolutionalClassifier`` (the shipped `fashion-classifier` is
/// ``PretrainedClassifiers/fashionFeatures()``). Other kinds (the MLP noise-aware classifier, `mlp`) are
/// refused with the kind they have.
public enum FeatureClassifiers {
    /// The classifier `scoresde evaluate` uses by default.
    public static let defaultName = "fashion-classifier"
    /// The classifiers shipped with the package, by name (their files are resources).
    public static let shippedNames: [String] = [defaultName]
    /// The metadata key naming a classifier file's network (as the classifier files write it).
    public static let kindKey = "classifier.kind"

    /// The shipped classifier `nameOrPath`, or the classifier in the file at that path (a file wins
    /// over a name).
    ///
    /// - Throws: ``ScoreSDEError/unknownName(_:)`` for a name that is neither shipped nor an
    ///   existing file; ``ScoreSDEError/io(path:message:)`` for a file that cannot be read or holds
    ///   something other than a feature classifier this build can load.
    public static func load(nameOrPath: String) throws -> any FeatureClassifier {
        if FileManager.default.fileExists(atPath: nameOrPath) {
            return try load(file: Safetensors.read(nameOrPath))
        }
        if nameOrPath == defaultName { return try PretrainedClassifiers.fashionFeatures() }
        let shipped = shippedNames.isEmpty ? "none yet" : shippedNames.joined(separator: ", ")
        throw ScoreSDEError.unknownName("'\(nameOrPath)' is neither a shipped feature classifier (\(shipped)) nor an existing file; check the path")
    }

    /// The feature classifier held by a decoded safetensors file, by its kind.
    ///
    /// - Throws: ``ScoreSDEError/io(path:message:)`` naming the file's kind when this build has no
    ///   feature classifier of that kind.
    public static func load(file: SafetensorsFile) throws -> any FeatureClassifier {
        let format = file.metadata["format"]
        guard format == ClassifierFile.format else {
            let what = format.map { "a '\($0)' file" } ?? "a safetensors file without a 'format' entry"
            throw ScoreSDEError.io(path: file.path, message: "not a feature classifier (\(what)); give a classifier file from `scoresde train-classifier`")
        }
        let kind = file.metadata[kindKey] ?? "mlp"
        switch kind {
        case "conv": return try ConvolutionalClassifier.load(file)
        default:
            throw ScoreSDEError.io(path: file.path, message: "a classifier of kind '\(kind)', which is not a feature classifier this build can load (the convolutional classifier, ConvolutionalClassifier of kind 'conv', is the one meant for evaluation)")
        }
    }
}
