import Foundation

// Reading and writing diffusers `UNet2DModel` checkpoints (Hugging Face diffusers' folder format:
// `config.json` + `diffusion_pytorch_model.safetensors`, optionally inside a pipeline folder with
// `model_index.json`, `unet/` and `scheduler/scheduler_config.json`).

/// Loading and writing diffusers `UNet2DModel` folders.
public enum DiffusersUNet {
    /// The `config.json` options this loader understands, with the values it supports.
    public static let supported = """
        down_block_types DownBlock2D / AttnDownBlock2D; up_block_types UpBlock2D / AttnUpBlock2D (the mirror); \
        mid_block_type UNetMidBlock2D (add_attention true or false); act_fn silu; time_embedding_type positional \
        (flip_sin_to_cos, freq_shift any); time_embedding_dim null; class_embed_type null with num_class_embeds \
        null or >= 2; attention_head_dim null (one head) or dividing every attention block's channels; \
        attn_norm_num_groups null; resnet_time_scale_shift default; downsample_padding 0 or 1; downsample_type and \
        upsample_type conv; mid_block_scale_factor 1; in_channels = out_channels; center_input_sample any
        """

    static func readJSON(_ path: String) throws -> [String: Any] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ScoreSDEError.io(path: path, message: "cannot read the file (missing or unreadable)")
        }
        guard let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ScoreSDEError.io(path: path, message: "not a JSON object")
        }
        return obj
    }

    /// The network configuration of a diffusers `UNet2DModel` `config.json`, and its `center_input_sample`.
    /// - Throws: ``ScoreSDEError/io(path:message:)`` naming the first unsupported option (and listing
    ///   ``supported``).
    public static func configuration(configFile path: String) throws -> (UNetConfiguration, centerInputSample: Bool) {
        let o = try readJSON(path)
        func fail(_ m: String) -> ScoreSDEError { .io(path: path, message: m) }
        func unsupported(_ key: String, _ value: Any) -> ScoreSDEError {
            fail("\(key) = \(value) is not supported. Supported: \(supported)")
        }
        func int(_ k: String, _ d: Int? = nil) throws -> Int {
            if let v = o[k] as? Int { return v }
            if let d, o[k] == nil || o[k] is NSNull { return d }
            throw fail("'\(k)' is missing or not an integer")
        }
        func strings(_ k: String) throws -> [String] {
            guard let v = o[k] as? [String] else { throw fail("'\(k)' is missing or not a list of strings") }
            return v
        }
        func isNull(_ k: String) -> Bool { o[k] == nil || o[k] is NSNull }
        func expect(_ k: String, _ allowed: String) throws {
            if let v = o[k], !(v is NSNull), (v as? String) != allowed { throw unsupported(k, v) }
        }
        if let cls = o["_class_name"] as? String, cls != "UNet2DModel" {
            throw fail("_class_name is '\(cls)'; only UNet2DModel (pixel-space DDPM U-Nets) is supported")
        }
        let known: Set<String> = ["sample_size", "in_channels", "out_channels", "center_input_sample", "time_embedding_type",
            "time_embedding_dim", "freq_shift", "flip_sin_to_cos", "down_block_types", "mid_block_type", "up_block_types",
            "block_out_channels", "layers_per_block", "mid_block_scale_factor", "downsample_padding", "downsample_type",
            "upsample_type", "dropout", "act_fn", "attention_head_dim", "norm_num_groups", "attn_norm_num_groups", "norm_eps",
            "resnet_time_scale_shift", "add_attention", "class_embed_type", "num_class_embeds", "num_train_timesteps"]
        for (k, v) in o where !k.hasPrefix("_") && !known.contains(k) {
            if v is NSNull || (v as? Bool) == false { continue }
            throw unsupported(k, v)
        }
        let size: Int
        if let s = o["sample_size"] as? Int { size = s }
        else if let s = o["sample_size"] as? [Int], s.count == 2, s[0] == s[1] { size = s[0] }
        else { throw fail("sample_size must be an integer (square images); got \(o["sample_size"] ?? "nothing")") }
        let cin = try int("in_channels", 3), cout = try int("out_channels", 3)
        guard cin == cout else { throw unsupported("out_channels", "\(cout) with in_channels = \(cin)") }
        guard let blocks = o["block_out_channels"] as? [Int], !blocks.isEmpty else { throw fail("'block_out_channels' is missing or not a list of integers") }
        let down = try strings("down_block_types"), up = try strings("up_block_types")
        guard down.count == blocks.count, up.count == blocks.count else {
            throw fail("down_block_types (\(down.count)), up_block_types (\(up.count)) and block_out_channels (\(blocks.count)) must have the same length")
        }
        var attn: [Bool] = []
        for d in down {
            switch d { case "DownBlock2D": attn.append(false); case "AttnDownBlock2D": attn.append(true); default: throw unsupported("down_block_types entry", d) }
        }
        for (u, b) in up.enumerated() {
            let want = attn[blocks.count - 1 - u] ? "AttnUpBlock2D" : "UpBlock2D"
            guard b == "UpBlock2D" || b == "AttnUpBlock2D" else { throw unsupported("up_block_types entry", b) }
            guard b == want else { throw fail("up_block_types[\(u)] is \(b) but down_block_types[\(blocks.count - 1 - u)] is \(down[blocks.count - 1 - u]); only mirrored U-Nets are supported (expected \(want))") }
        }
        try expect("mid_block_type", "UNetMidBlock2D")
        if o.keys.contains("mid_block_type"), o["mid_block_type"] is NSNull { throw unsupported("mid_block_type", "null") }
        try expect("act_fn", "silu"); try expect("time_embedding_type", "positional")
        try expect("resnet_time_scale_shift", "default"); try expect("downsample_type", "conv"); try expect("upsample_type", "conv")
        if !isNull("time_embedding_dim"), (o["time_embedding_dim"] as? Int) != 4 * blocks[0] { throw unsupported("time_embedding_dim", o["time_embedding_dim"]!) }
        if !isNull("class_embed_type") { throw unsupported("class_embed_type", o["class_embed_type"]!) }
        if !isNull("attn_norm_num_groups") { throw unsupported("attn_norm_num_groups", o["attn_norm_num_groups"]!) }
        let downPadding = try int("downsample_padding", 1)
        guard downPadding == 0 || downPadding == 1 else { throw unsupported("downsample_padding", downPadding) }
        if let f = o["mid_block_scale_factor"] as? Double, f != 1 { throw unsupported("mid_block_scale_factor", f) }
        let addAttention = o["add_attention"] as? Bool ?? true
        var headDim: Int? = nil
        if !isNull("attention_head_dim") {
            guard let hd = o["attention_head_dim"] as? Int, hd >= 1 else { throw unsupported("attention_head_dim", o["attention_head_dim"]!) }
            var attnChannels = zip(blocks, attn).filter(\.1).map(\.0)
            if addAttention { attnChannels.append(blocks.last!) }
            if let bad = attnChannels.first(where: { $0 % hd != 0 }) {
                throw fail("attention_head_dim = \(hd) does not divide the \(bad) channels of an attention block. Supported: \(supported)")
            }
            headDim = hd
        }
        let classes = try int("num_class_embeds", 0)
        guard classes == 0 || classes >= 2 else { throw unsupported("num_class_embeds", classes) }
        let groups = try int("norm_num_groups", 32)
        let eps = (o["norm_eps"] as? Double) ?? 1e-5
        let flip = (o["flip_sin_to_cos"] as? Bool) ?? true
        let shift = (o["freq_shift"] as? Double) ?? 0
        let dropout = (o["dropout"] as? Double) ?? 0
        var c = UNetConfiguration(imageSize: size, channels: cin, blockOutChannels: blocks, layersPerBlock: try int("layers_per_block", 2),
                                  attentionLevels: attn, midBlockAttention: addAttention, normGroups: groups, normEpsilon: eps,
                                  classCount: classes > 0 ? classes - 1 : 0, dropout: dropout, flipSinToCos: flip, freqShift: shift)
        c.attentionHeadDim = headDim
        c.downsamplePadding = downPadding
        do { try c.validate() } catch let error as ScoreSDEError where error.argumentMessage != nil { throw fail("the configuration is not a valid U-Net here: \(error.argumentMessage ?? "")") }
        return (c, (o["center_input_sample"] as? Bool) ?? false)
    }

    /// The pre-0.14 attention names of diffusers (`query`, `key`, `value`, `proj_attn`), which the
    /// published DDPM checkpoints may use, mapped to today's.
    static func modernName(_ name: String) -> String {
        for (old, new) in [(".query.", ".to_q."), (".key.", ".to_k."), (".value.", ".to_v."), (".proj_attn.", ".to_out.0.")] where name.contains(old) {
            return name.replacingOccurrences(of: old, with: new)
        }
        return name
    }

    /// Loads a diffusers `UNet2DModel`: `path` is a pipeline folder (`model_index.json`, `unet/`,
    /// `scheduler/scheduler_config.json`), a bare model folder (`config.json` +
    /// `diffusion_pytorch_model.safetensors`; F32, F16 or BF16), or a folder written by
    /// ``write(_:to:)``. The schedule comes from `scheduler` when given, else from the pipeline's
    /// `scheduler/scheduler_config.json` (or a `scheduler_config.json` beside `config.json`), else
    /// diffusers' `DDPMScheduler()` defaults (1 000 linear steps 1e-4 … 0.02, ε-prediction).
    ///
    /// `timeMap` nil: the time scale recorded by our writer when present, else
    /// ``DiffusersTimeMap/alphaBarMatched``. Data: the scaling our writer recorded, else diffusers'
    /// image convention, 8-bit pixels `0 … 255` ↔ `[−1, 1]` (``UNetScore/dataScaling`` `2/255, −1`,
    /// 256 dequantization levels, so bits/dim are per 8-bit pixel value).
    /// - Throws: ``ScoreSDEError/io(path:message:)`` naming the missing file, the unsupported option
    ///   (listing what is supported), or the tensor whose name or shape disagrees with the config;
    ///   `nonFinite` for NaN/Inf weights.
    public static func load(_ path: String, scheduler: DiffusersScheduler? = nil, timeMap: DiffusersTimeMap? = nil) throws -> DiffusersScore {
        let fm = FileManager.default
        let root = (path as NSString).standardizingPath
        var unetDir = root
        var schedulerFile: String? = nil
        if fm.fileExists(atPath: root + "/model_index.json") {
            let index = try readJSON(root + "/model_index.json")
            if let u = index["unet"] as? [Any], u.count == 2, let cls = u[1] as? String, cls != "UNet2DModel" {
                throw ScoreSDEError.io(path: root + "/model_index.json", message: "the pipeline's unet is a \(cls); only UNet2DModel is supported")
            }
            unetDir = root + "/unet"
            if fm.fileExists(atPath: root + "/scheduler/scheduler_config.json") { schedulerFile = root + "/scheduler/scheduler_config.json" }
        } else if fm.fileExists(atPath: root + "/scheduler_config.json") {
            schedulerFile = root + "/scheduler_config.json"
        }
        let configPath = unetDir + "/config.json"
        guard fm.fileExists(atPath: configPath) else {
            throw ScoreSDEError.io(path: root, message: "no config.json: expected a diffusers UNet2DModel folder (config.json + diffusion_pytorch_model.safetensors) or a pipeline folder (model_index.json, unet/, scheduler/)")
        }
        var weightsPath = unetDir + "/diffusion_pytorch_model.safetensors"
        if !fm.fileExists(atPath: weightsPath) {
            let fp16 = unetDir + "/diffusion_pytorch_model.fp16.safetensors"
            if fm.fileExists(atPath: fp16) { weightsPath = fp16 } else {
                let pickle = fm.fileExists(atPath: unetDir + "/diffusion_pytorch_model.bin")
                throw ScoreSDEError.io(path: unetDir, message: "no diffusion_pytorch_model.safetensors" + (pickle ? " (there is a PyTorch pickle diffusion_pytorch_model.bin, which is not read: convert it with `UNet2DModel.from_pretrained(dir).save_pretrained(dir, safe_serialization=True)`)" : ""))
            }
        }
        let (config, center) = try configuration(configFile: configPath)
        let sched = try scheduler ?? (schedulerFile.map { try DiffusersScheduler(configFile: $0) } ?? DiffusersScheduler())
        let file = try Safetensors.read(weightsPath)
        let net = try UNet<Float>(config)
        var byName: [String: SafetensorsTensor] = [:]
        for t in file.tensors { byName[modernName(t.name)] = t }
        let expected = Set(net.layout.refs.map(\.name))
        if let extra = file.tensors.first(where: { !expected.contains(modernName($0.name)) }) {
            throw ScoreSDEError.io(path: weightsPath, message: "tensor '\(extra.name)' is not part of the U-Net that config.json describes; the config and the weights disagree")
        }
        var values = [Float](repeating: 0, count: net.parameterCount)
        for r in net.layout.refs {
            guard let t = byName[r.name] else {
                throw ScoreSDEError.io(path: weightsPath, message: "missing tensor '\(r.name)' (shape \(r.shape)) that config.json implies; the config and the weights disagree")
            }
            guard t.shape == r.shape else {
                throw ScoreSDEError.io(path: weightsPath, message: "tensor '\(r.name)' has shape \(t.shape) but config.json implies \(r.shape); the config and the weights disagree")
            }
            for (j, v) in t.values.enumerated() {
                guard v.isFinite else { throw ScoreSDEError.nonFinite("\(weightsPath): tensor '\(r.name)' contains NaN or Inf") }
                values[r.offset + j] = Float(v)
            }
        }
        var map = timeMap ?? .alphaBarMatched
        if timeMap == nil, file.metadata["model"] == "unet", let s = file.metadata["unet.time_scale"].flatMap(Double.init) { map = .affine(scale: s, shift: 0) }
        var unet = try UNetScore(configuration: config, sde: sched.continuousSDE, parameterization: .noisePrediction,
                                 timeScale: 999, parameters: values)
        if file.metadata["data.scale"] != nil {
            unet.dataScaling = try DataScaling(metadata: MetadataReader(map: file.metadata, path: weightsPath))
            if let l = file.metadata["data.dequantization_levels"].flatMap(Int.init), l >= 2 { unet.dequantizationLevels = l }
        } else {
            // diffusers' image pipelines: 8-bit pixels 0 … 255 ↔ [−1, 1].
            unet.dataScaling = try DataScaling(scale: 2 / 255.0, shift: -1)
            unet.dequantizationLevels = 256
        }
        return try DiffusersScore(network: unet, scheduler: sched, timeMap: map, centerInputSample: center)
    }

    /// The diffusers `config.json` of a configuration.
    public static func config(_ c: UNetConfiguration) -> [String: Any] {
        ["_class_name": "UNet2DModel", "sample_size": c.imageSize, "in_channels": c.channels, "out_channels": c.channels,
         "center_input_sample": false, "time_embedding_type": "positional", "freq_shift": c.freqShift, "flip_sin_to_cos": c.flipSinToCos,
         "down_block_types": c.attentionLevels.map { $0 ? "AttnDownBlock2D" : "DownBlock2D" },
         "up_block_types": c.attentionLevels.reversed().map { $0 ? "AttnUpBlock2D" : "UpBlock2D" },
         "mid_block_type": "UNetMidBlock2D", "block_out_channels": c.blockOutChannels, "layers_per_block": c.layersPerBlock,
         "mid_block_scale_factor": 1, "downsample_padding": c.downsamplePadding, "downsample_type": "conv", "upsample_type": "conv",
         "dropout": c.dropout, "act_fn": "silu", "attention_head_dim": c.attentionHeadDim.map { $0 as Any } ?? NSNull(), "norm_num_groups": c.normGroups,
         "attn_norm_num_groups": NSNull(), "norm_eps": c.normEpsilon, "resnet_time_scale_shift": "default",
         "add_attention": c.midBlockAttention, "class_embed_type": NSNull(),
         "num_class_embeds": c.classCount > 0 ? c.classCount + 1 : NSNull(), "num_train_timesteps": NSNull()]
    }

    /// Writes `model` as a diffusers pipeline folder: `model_index.json` (a `DDPMPipeline`),
    /// `unet/config.json`, `unet/diffusion_pytorch_model.safetensors` (F32, diffusers' names; our
    /// metadata kept) and `scheduler/scheduler_config.json` (a `DDPMScheduler`), so that
    /// `UNet2DModel.from_pretrained(path, subfolder="unet")` gives the same network output and
    /// `DDPMPipeline.from_pretrained(path)` samples from it.
    ///
    /// The scheduler is `N = timeScale + 1` steps: VP(β_min, β_max) → linear betas `β_min/N … β_max/N`;
    /// the cosine VP with `s = 0.008` → `squaredcos_cap_v2`.
    /// - Throws: `invalidArgument` naming the option diffusers cannot express: the scaled-score
    ///   parameterisation, a VE or sub-VP SDE, a cosine VP with `s ≠ 0.008`, a non-integer time scale.
    public static func write(_ model: UNetScore, to path: String) throws {
        try requireParameter(model.parameterization == .noisePrediction,
                             "parameterization = scaled_score has no diffusers prediction_type (epsilon, v_prediction, sample); only ε-prediction U-Nets can be written")
        let N = model.timeScale + 1
        try requireParameter(N == N.rounded() && N >= 2, "timeScale = \(model.timeScale): diffusers' integer timesteps need timeScale = N − 1 for an integer N (999 for 1 000 steps)")
        var sched = DiffusersScheduler(trainSteps: Int(N))
        switch model.sde {
        case let .vp(a, b): sched.betaStart = a / N; sched.betaEnd = b / N
        case let .cosineVP(s, _):
            try requireParameter(s == 0.008, "sde = cosineVP(s: \(s)): diffusers' squaredcos_cap_v2 has s = 0.008")
            sched.betaSchedule = .squaredcosCapV2
        case .ve, .subVP:
            throw ScoreSDEError.invalidArgument("sde = \(model.sde): diffusers' DDPMScheduler has variance-preserving schedules only (linear, squaredcos_cap_v2)")
        }
        let fm = FileManager.default
        for d in [path, path + "/unet", path + "/scheduler"] {
            do { try fm.createDirectory(atPath: d, withIntermediateDirectories: true) }
            catch { throw ScoreSDEError.io(path: d, message: "cannot create the folder: \(error.localizedDescription)") }
        }
        func json(_ o: [String: Any], _ p: String) throws {
            let data = try JSONSerialization.data(withJSONObject: o, options: [.prettyPrinted, .sortedKeys])
            try AtomicFile.write(data, to: p)
        }
        var meta = model.metadata
        meta["format"] = "pt"
        try Safetensors.write(model.namedTensors, metadata: meta, dtype: .f32, to: path + "/unet/diffusion_pytorch_model.safetensors")
        try json(config(model.configuration), path + "/unet/config.json")
        try json(sched.configJSON, path + "/scheduler/scheduler_config.json")
        try json(["_class_name": "DDPMPipeline", "unet": ["diffusers", "UNet2DModel"], "scheduler": ["diffusers", "DDPMScheduler"]],
                 path + "/model_index.json")
    }
}
