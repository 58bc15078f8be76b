import Foundation

/// Crash-safe file output: data goes to a temporary file in the target's directory, is flushed to
/// disk, and is then renamed over the target in one step. A reader therefore sees either the old
/// file or the complete new one, never a half-written file, and a failed write leaves nothing behind.
///
///     try AtomicFile.write(Npy.encode(samples), to: "out/samples.npy")
public enum AtomicFile {
    /// Writes `data` to `path` atomically, replacing any existing file there.
    ///
    /// - Parameters:
    ///   - data: the bytes to write.
    ///   - path: the file to create or replace.
    ///   - previous: when given and `path` exists, the file being replaced is kept under
    ///   this name (hard link, else a copy), itself replaced atomically: at every moment `path`
    ///   holds the old or the new file, and after the call `previous` holds the old one.
    /// - Throws: ``ScoreSDEError/io(path:message:)`` when the directory is missing or not writable,
    ///   when `path` names a directory, or when the disk is full; the temporary file is removed.
    public static func write(_ data: Data, to path: String, keepingPreviousAs previous: String? = nil) throws {
        guard !path.isEmpty else {
            throw ScoreSDEError.io(path: path, message: "empty output path; give a file name such as out/samples.npy")
        }
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) else {
            throw ScoreSDEError.io(path: path, message: "cannot write: directory '\(directory)' does not exist; create it first (mkdir -p '\(directory)') or choose another output path")
        }
        guard isDirectory.boolValue else {
            throw ScoreSDEError.io(path: path, message: "cannot write: '\(directory)' is not a directory")
        }
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw ScoreSDEError.io(path: path, message: "cannot write: this path is a directory; give a file name inside it")
        }

        let tempPath = directory + "/." + url.lastPathComponent + ".tmp-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        let fd = open(tempPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666)
        guard fd >= 0 else {
            let code = errno
            throw ScoreSDEError.io(path: path, message: "cannot create a file in '\(directory)': \(describe(code)); choose a writable output directory")
        }
        var ok = false
        defer {
            if !ok { unlink(tempPath) }
        }
        do {
            defer { close(fd) }
            try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
                var offset = 0
                while offset < raw.count {
                    let n = Foundation.write(fd, raw.baseAddress! + offset, raw.count - offset)
                    if n < 0 {
                        let code = errno
                        if code == EINTR { continue }
                        throw ScoreSDEError.io(path: path, message: "writing failed after \(offset) of \(raw.count) bytes: \(describe(code)); nothing was written")
                    }
                    offset += n
                }
            }
            if fsync(fd) != 0 {
                let code = errno
                if code != EINVAL && code != EROFS {   // not every file system supports fsync
                    throw ScoreSDEError.io(path: path, message: "flushing to disk failed: \(describe(code)); nothing was written")
                }
            }
        }
        if let previous, FileManager.default.fileExists(atPath: path) {
            try keep(path, as: previous)
        }
        if rename(tempPath, path) != 0 {
            let code = errno
            throw ScoreSDEError.io(path: path, message: "cannot replace the file: \(describe(code)); nothing was written")
        }
        ok = true
        syncDirectory(directory)
    }

    /// Makes `previous` a copy of `path` (a hard link when the file system allows), atomically.
    private static func keep(_ path: String, as previous: String) throws {
        let directory = URL(fileURLWithPath: previous).deletingLastPathComponent().path
        let linkPath = directory + "/." + URL(fileURLWithPath: previous).lastPathComponent + ".tmp-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        if link(path, linkPath) == 0 {
            if rename(linkPath, previous) != 0 {
                let code = errno
                unlink(linkPath)
                throw ScoreSDEError.io(path: previous, message: "cannot keep the previous file: \(describe(code)); nothing was written")
            }
        } else {
            try write(read(path), to: previous)   // no hard links here: copy
        }
    }

    /// Flushes a directory's entries (the rename) to disk, so a power cut cannot undo it.
    private static func syncDirectory(_ directory: String) {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = fsync(fd)
        close(fd)
    }

    /// Reads a whole file, turning a missing or unreadable file into ``ScoreSDEError/io(path:message:)``.
    static func read(_ path: String) throws -> Data {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ScoreSDEError.io(path: path, message: "no such file; check the path (relative paths are resolved from '\(FileManager.default.currentDirectoryPath)')")
        }
        guard !isDirectory.boolValue else {
            throw ScoreSDEError.io(path: path, message: "is a directory, not a file")
        }
        do {
            return try Data(contentsOf: URL(fileURLWithPath: path), options: .mappedIfSafe)
        } catch {
            throw ScoreSDEError.io(path: path, message: "cannot read: \(error.localizedDescription)")
        }
    }

    private static func describe(_ code: Int32) -> String {
        let text = String(cString: strerror(code))
        switch code {
        case EACCES, EPERM: return "\(text) (no write permission)"
        case ENOSPC: return "\(text) (disk full)"
        case EROFS: return "\(text) (read-only file system)"
        default: return text
        }
    }
}
