import CZlib
import Foundation

/// gzip files through zlib (`inflateInit2` with window bits `16 + MAX_WBITS`: the gzip header,
/// the deflate data and the CRC-32 and length trailer are all checked by zlib).
///
///     let raw = try Gzip.decompress(data, path: "train-images-idx3-ubyte.gz", maximumBytes: 1 << 30)
///
/// Concatenated members decode to the concatenation of their contents, as `gzip -d` does.
enum Gzip {
    /// Whether `data` starts with the gzip magic bytes `1f 8b`.
    static func isGzip(_ data: Data) -> Bool {
        data.count >= 2 && data[data.startIndex] == 0x1F && data[data.startIndex + 1] == 0x8B
    }

    /// The decompressed contents of the gzip stream `data`.
    ///
    /// - Parameters:
    ///   - path: the file's name, for error messages only.
    ///   - maximumBytes: the largest output accepted; more is an error (so a small corrupt or
    ///     hostile file cannot make the reader allocate without bound).
    /// - Throws: ``ScoreSDEError/idx(path:problem:)`` with ``IDXProblem/corruptGzip(_:)`` (zlib's
    ///   message), ``IDXProblem/truncatedGzip`` or ``IDXProblem/decompressedTooLarge(limit:)``.
    static func decompress(_ data: Data, path: String, maximumBytes: Int) throws -> [UInt8] {
        func fail(_ problem: IDXProblem) -> ScoreSDEError { .idx(path: path, problem: problem) }
        var stream = z_stream()
        let initStatus = czlib_inflate_init_gzip(&stream)
        guard initStatus == Z_OK else {
            // Only a failed allocation gets here (the version and the window bits are ours).
            throw fail(.corruptGzip("zlib could not start inflating (status \(initStatus))"))
        }
        defer { inflateEnd(&stream) }

        var output = [UInt8]()
        let chunk = 1 << 18
        var buffer = [UInt8](repeating: 0, count: chunk)
        try data.withUnsafeBytes { (input: UnsafeRawBufferPointer) in
            guard let base = input.bindMemory(to: Bytef.self).baseAddress else { throw fail(.truncatedGzip) }
            // zlib counts input in 32-bit units: hand it over at most 1 GiB at a time.
            var fed = 0
            func feed() {
                let n = min(input.count - fed, 1 << 30)
                stream.next_in = UnsafeMutablePointer(mutating: base + fed)
                stream.avail_in = uInt(n)
                fed += n
            }
            feed()
            while true {
                if stream.avail_in == 0 && fed < input.count { feed() }
                let (status, produced) = buffer.withUnsafeMutableBufferPointer { out -> (Int32, Int) in
                    stream.next_out = out.baseAddress
                    stream.avail_out = uInt(chunk)
                    let status = inflate(&stream, Z_NO_FLUSH)
                    return (status, chunk - Int(stream.avail_out))
                }
                if produced > 0 {
                    guard output.count + produced <= maximumBytes else { throw fail(.decompressedTooLarge(limit: maximumBytes)) }
                    output.append(contentsOf: buffer[0 ..< produced])
                }
                let exhausted = stream.avail_in == 0 && fed == input.count
                switch status {
                case Z_STREAM_END:
                    // One member done; another may follow (gzip's concatenation), anything else is corrupt.
                    if exhausted { return }
                    guard inflateReset(&stream) == Z_OK else { throw fail(.corruptGzip("zlib could not start the next member")) }
                case Z_OK:
                    // Room left in the output and no input left, yet the stream has not ended.
                    if exhausted && produced < chunk { throw fail(.truncatedGzip) }
                case Z_BUF_ERROR:
                    // No progress possible (the input is fed above whenever some is left): it ended inside the stream.
                    throw fail(.truncatedGzip)
                default:
                    let message = stream.msg.map { String(cString: $0) } ?? "zlib status \(status)"
                    throw fail(.corruptGzip(message))
                }
            }
        }
        return output
    }

    /// `bytes` as one gzip member (zlib's `deflate`, modification time 0, so the output depends
    /// only on the input and `level`). Used to write test files and fixtures.
    static func compress(_ bytes: [UInt8], level: Int32 = 6) -> Data {
        var stream = z_stream()
        precondition(czlib_deflate_init_gzip(&stream, level) == Z_OK, "Gzip.compress: zlib could not allocate its state")
        defer { deflateEnd(&stream) }
        var output = Data()
        let chunk = 1 << 16
        var buffer = [UInt8](repeating: 0, count: chunk)
        bytes.withUnsafeBufferPointer { input in
            stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress)
            stream.avail_in = uInt(input.count)
            var status = Z_OK
            repeat {
                let produced = buffer.withUnsafeMutableBufferPointer { out -> Int in
                    stream.next_out = out.baseAddress
                    stream.avail_out = uInt(chunk)
                    status = deflate(&stream, Z_FINISH)
                    return chunk - Int(stream.avail_out)
                }
                output.append(contentsOf: buffer[0 ..< produced])
            } while status == Z_OK
            precondition(status == Z_STREAM_END, "Gzip.compress: deflate failed with status \(status)")
        }
        return output
    }
}
