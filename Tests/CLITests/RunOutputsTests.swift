import Foundation
import ScoreSDE
import Testing

/// The library helpers behind the CLI's outputs: all-or-nothing writes and the stats JSON.
@Suite struct RunOutputsTests {
    @Test func aFailedWriteRemovesTheFilesAlreadyWritten() throws {
        let ws = try Workspace()
        var outputs = RunOutputs()
        outputs.add(ws.path("a.npy"), for: "--output")
        outputs.add(ws.path("b.json"), for: "--stats")
        outputs.add(ws.path("c.png"), for: "--png")
        try outputs.check()
        // Something takes the last path between the check and the write.
        try FileManager.default.createDirectory(atPath: ws.path("c.png"), withIntermediateDirectories: false)
        let contents = ["--output": Data("a".utf8), "--stats": Data("b".utf8), "--png": Data("c".utf8)]
        #expect {
            try outputs.write(contents)
        } throws: { error in
            "\(error)".contains("--png") && "\(error)".contains("removed")
        }
        #expect(ws.files() == ["c.png"], "only the directory that blocked the write remains")
    }

    @Test func checkRejectsWhatCannotBeWritten() throws {
        let ws = try Workspace()
        func message(_ paths: [(String, String)]) -> String? {
            var outputs = RunOutputs()
            for (role, path) in paths { outputs.add(path, for: role) }
            do { try outputs.check(); return nil } catch { return "\(error)" }
        }
        #expect(message([("--output", ws.path("ok.npy"))]) == nil)
        #expect(message([("--output", ws.path("missing/x.npy"))])?.contains("does not exist") == true)
        #expect(message([("--output", ws.path("x")), ("--png", ws.path("./x"))])?.contains("same file") == true)
        #expect(message([("--png", ws.url.path)])?.contains("directory") == true)
        #expect(message([("--png", "")])?.contains("empty") == true)
        #expect(message([("--png", ws.path(String(repeating: "x", count: 240)))])?.contains("too long") == true)
        #expect(ws.files().isEmpty, "checking writes nothing")
    }

    @Test func statsJSONKeepsKeyOrderAndParses() throws {
        var stats = RunStats()
        stats["nfe"] = 200
        stats["wall_seconds"] = .double(0.5)
        stats["rate"] = .double(.infinity)
        stats["name"] = "a \"quoted\"\\ name\n\u{1}"
        stats["shape"] = .ints([256, 2])
        stats["batch"] = nil
        stats["flag"] = true
        var nested = RunStats()
        nested["x"] = 1e-5
        stats["nested"] = .object(nested)
        stats["nfe"] = 201   // replaced in place
        #expect(stats.keys == ["nfe", "wall_seconds", "rate", "name", "shape", "flag", "nested"])

        let text = String(decoding: stats.jsonData(), as: UTF8.self)
        #expect(text.hasPrefix("{\n  \"nfe\": 201,\n  \"wall_seconds\": 0.5,"))
        let object = try #require(try JSONSerialization.jsonObject(with: stats.jsonData()) as? [String: Any])
        #expect(object["nfe"] as? Int == 201)
        #expect(object["rate"] is NSNull, "non-finite numbers become null")
        #expect(object["name"] as? String == "a \"quoted\"\\ name\n\u{1}")
        #expect(object["shape"] as? [Int] == [256, 2])
        #expect((object["nested"] as? [String: Any])?["x"] as? Double == 1e-5)
    }

    /// The demo figure of a command: written unless --png or --output names the result, whatever
    /// --stats says, under a name that depends on the model (demos of two models do not collide).
    @Test func defaultFiguresIgnoreStatsAndNameTheModel() throws {
        let ws = try Workspace()
        let ring = try ws.run(["reconstruct", "--steps", "20", "--samples-per-input", "50", "--stats", "a.json"])
        try #require(ring.status == 0, "\(ring)")
        let digits = try ws.run(["reconstruct", "--model", "digits-mlp", "--count", "1", "--samples-per-input", "1", "--steps", "30"])
        try #require(digits.status == 0, "\(digits)")
        #expect(ws.files() == ["a.json", "reconstruction-digits-mlp.png", "reconstruction.png"])
        let scripted = try ws.run(["reconstruct", "--steps", "20", "--samples-per-input", "50", "--output", "c.npy", "--stats", "c.json"])
        try #require(scripted.status == 0, "\(scripted)")
        #expect(ws.files() == ["a.json", "c.json", "c.npy", "reconstruction-digits-mlp.png", "reconstruction.png"], "--output alone names the result")
        _ = try PNG.read(ws.path("reconstruction-digits-mlp.png"))
    }
}
