/// Checkpoints as safetensors with the official state_dict names under `encoder.`,
/// `predictor.` and `target_encoder.` (fixed position tables included, as in the official
/// state_dicts), the config in the metadata, and optionally the full training state
/// (AdamW moments, step counter, mask generator) so that training resumes bit for bit.
public struct SaveFlags: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let weights = SaveFlags(rawValue: 1)
    public static let trainingState = SaveFlags(rawValue: 2)
}

public let checkpointFormatVersion = "1"
/// The library's version, "MAJOR.MINOR.PATCH": the one definition (the Makefile reads it from
/// here for the SONAME's full name and ijepa.pc; the Python package's version must equal it).
public let libraryVersionString = "1.0.0"
/// The step and the mask sampler's batch counter stay below this: a checkpoint load refuses
/// larger values (so the counters can still advance), a step refuses to go past it
/// (IJEPA_ERR_STATE) and the sampler's counter wraps to 0 there, so every state the library
/// holds is one it can save and load again. No run gets near 2^62 steps.
public let stateCounterLimit: Int64 = 1 << 62

extension ModelConfig {
    /// All fields, with the C header's names.
    public var json: JSONValue { .object(Self.fields.map { ($0.name, $0.get(self)) }) }

    /// Reads a config written by `json`; every field is required and type-checked, except those
    /// appended after the first release, which older files lack: absent means the default.
    public init(json j: JSONValue) throws {
        try self.init(jsonIgnoringValidity: j)
        do { try validate() } catch let e as IJEPAError { throw IJEPAError.format("checkpoint config is invalid: \(e.message)") }
    }

    /// `init(json:)` without the final `validate()`: every field present and of its type.
    init(jsonIgnoringValidity j: JSONValue) throws {
        self.init()
        for f in Self.fields {
            guard let v = j[f.name] else {
                if f.appended { continue }
                throw IJEPAError.format("checkpoint config: field '\(f.name)' is missing or has the wrong type")
            }
            if !f.set(&self, v) { throw IJEPAError.format("checkpoint config: field '\(f.name)' is missing or has the wrong type") }
        }
    }
}

extension Model {
    /// (name, shape, pointer) of every tensor a weights checkpoint holds, position tables included.
    func weightTensors(_ body: ([(String, [Int], UnsafePointer<Float>)]) throws -> Void) rethrows {
        let N = config.numPatches, D = config.embedDim, Dp = config.predEmbedDim
        try posEmbed.withUnsafeBufferPointer { pe in
            try predPosEmbed.withUnsafeBufferPointer { ppe in
                var list: [(String, [Int], UnsafePointer<Float>)] = []
                list.append(("encoder.pos_embed", [1, N, D], pe.baseAddress!))
                for t in layout.tensors {
                    if t.name == "predictor.mask_token" {
                        list.append(("predictor.predictor_pos_embed", [1, N, Dp], ppe.baseAddress!))
                    }
                    list.append((t.name, t.shape, UnsafePointer(params.ptr + t.offset)))
                }
                list.append(("target_encoder.pos_embed", [1, N, D], pe.baseAddress!))
                for t in layout.targetTensors { list.append((t.name, t.shape, UnsafePointer(target.ptr + t.offset))) }
                try body(list)
            }
        }
    }

    /// Saves to `path` atomically (temporary file, fsync, rename).
    public func save(to path: String, flags: SaveFlags) throws {
        if path.isEmpty { throw IJEPAError.invalidArgument("path is empty") }
        if flags.isEmpty || !SaveFlags([.weights, .trainingState]).isSuperset(of: flags) {
            throw IJEPAError.invalidArgument("flags must be IJEPA_SAVE_WEIGHTS and/or IJEPA_SAVE_TRAINING_STATE, got \(flags.rawValue)")
        }
        let training = flags.contains(.trainingState)
        var w = SafetensorsWriter()
        w.metadata = [
            ("format", "pt"),
            ("ijepa.format_version", checkpointFormatVersion),
            ("ijepa.library_version", libraryVersionString),
            ("ijepa.contents", training ? "training_state" : "weights"),
            ("ijepa.config", config.json.serialized),
        ]
        if training {
            w.metadata += [
                ("ijepa.step", String(step)),
                ("ijepa.mask_counter", String(collator.counter)),
                ("ijepa.mask_rng", collator.locationRNG.state.map { String($0) }.joined(separator: ",")),
                ("ijepa.override", [overrideLR, overrideWD, overrideEMA].map { String($0.bitPattern) }.joined(separator: ",")),
            ]
        }
        try weightTensors { list in
            for (name, shape, p) in list { w.add(name, shape: shape, floats: p) }
            if training {
                for t in layout.tensors { w.add("adam_m." + t.name, shape: t.shape, floats: adamM.ptr + t.offset) }
                for t in layout.tensors { w.add("adam_v." + t.name, shape: t.shape, floats: adamV.ptr + t.offset) }
            }
            // The loader refuses non-finite tensors, so never replace a loadable file with one.
            var named = list.map { ($0.0, CFPtr($0.2), $0.1.reduce(1, *)) }
            if training { named += [("adam_m", CFPtr(adamM.ptr), layout.totalCount), ("adam_v", CFPtr(adamV.ptr), layout.totalCount)] }
            for (name, p, n) in named {
                do { try Self.checkFinite(p, n, name) } catch {
                    throw IJEPAError.numeric("\(name) contains NaN or Inf; refusing to save a checkpoint that could not be loaded (nothing was written, \(path) is unchanged)")
                }
            }
            try w.write(atomicallyTo: path)
        }
    }

    /// Loads a checkpoint written by `save` (config from its metadata), with the training state
    /// when the file has it.
    public static func load(from path: String, nThreads: Int? = nil) throws -> Model {
        try namingFile(path) { try loadUnnamed(from: path, nThreads: nThreads) }
    }

    private static func loadUnnamed(from path: String, nThreads: Int?) throws -> Model {
        let f = try SafetensorsFile(path: path)
        guard let cj = f.metadata["ijepa.config"] else {
            throw IJEPAError.format("\(path) has no 'ijepa.config' metadata (not written by this library); create a model with the right config and use load_weights")
        }
        var c = try ModelConfig(json: try JSONValue.parse(cj))
        if let nThreads { c.nThreads = nThreads }
        // the file's tensors must fit the config before anything is allocated for it
        let layout = ParamLayout(c)
        let byName = try normalizedNames(f)
        for t in layout.tensors + layout.targetTensors {
            guard let key = byName[t.name], let e = f.entries[key] else {
                throw IJEPAError.format("missing tensor '\(t.name)' for the config in the metadata")
            }
            if e.shape.reduce(1, *) != t.count {
                throw IJEPAError.format("'\(t.name)' has shape \(e.shape), the config in the metadata needs \(t.shape)")
            }
        }
        let m: Model
        do { m = try Model(config: c) } catch let e as IJEPAError {
            if case .outOfMemory = e { throw e }
            throw IJEPAError.format("checkpoint config is invalid: \(e.message)")
        }
        try m.loadWeights(f, strict: true, trainingState: f.metadata["ijepa.contents"] == "training_state")
        return m
    }

    public func loadWeights(from path: String, strict: Bool) throws {
        try namingFile(path) { try loadWeights(try SafetensorsFile(path: path), strict: strict, trainingState: false) }
    }

    /// Copies weights from a parsed file. Names may carry DDP's `module.` component
    /// (`encoder.module.blocks.0…` or `module.encoder…`). Everything is checked and staged first:
    /// on any error the model is unchanged.
    public func loadWeights(_ f: SafetensorsFile, strict: Bool, trainingState: Bool) throws {
        let byName = try normalizedNames(f)
        // destination: (name, shape, buffer, offset)
        var wanted: [(String, [Int], FloatBuffer, Int)] = []
        for t in layout.tensors { wanted.append((t.name, t.shape, params, t.offset)) }
        for t in layout.targetTensors { wanted.append((t.name, t.shape, target, t.offset)) }
        if trainingState {
            for t in layout.tensors { wanted.append(("adam_m." + t.name, t.shape, adamM, t.offset)) }
            for t in layout.tensors { wanted.append(("adam_v." + t.name, t.shape, adamV, t.offset)) }
        }
        let N = config.numPatches
        let fixed: [(String, [Int])] = [("encoder.pos_embed", [1, N, config.embedDim]),
                                        ("target_encoder.pos_embed", [1, N, config.embedDim]),
                                        ("predictor.predictor_pos_embed", [1, N, config.predEmbedDim])]
        var known = Set(wanted.map { $0.0 })
        for (n, shape) in fixed {
            known.insert(n)
            if let key = byName[n], let e = f.entries[key], e.shape.reduce(1, *) != shape.reduce(1, *) {
                throw IJEPAError.format("'\(key)' has shape \(e.shape), this model's is \(shape) (different image or patch size?)")
            }
        }
        let missing = wanted.map { $0.0 }.filter { byName[$0] == nil }
        let unexpected = byName.keys.filter { !known.contains($0) && !$0.hasPrefix("adam_m.") && !$0.hasPrefix("adam_v.") }.sorted()
        if strict && !missing.isEmpty { throw IJEPAError.format("missing tensors: \(listed(missing, 12))") }
        if strict && !unexpected.isEmpty { throw IJEPAError.format("unexpected tensors: \(listed(unexpected, 12))") }
        // stage
        var staged: [(FloatBuffer, Int, [Float])] = []
        for (name, shape, buf, off) in wanted {
            guard let key = byName[name] else { continue }
            let e = try f.entry(key)
            if e.shape != shape && !(e.shape.reduce(1, *) == shape.reduce(1, *) && e.shape.filter { $0 != 1 } == shape.filter { $0 != 1 }) {
                throw IJEPAError.format("'\(key)' has shape \(e.shape), this model expects \(shape)")
            }
            let v = try f.floats(key)
            if let bad = v.firstIndex(where: { !$0.isFinite }) {
                throw IJEPAError.numeric("'\(key)' contains a non-finite value at index \(bad)")
            }
            staged.append((buf, off, v))
        }
        var newStep = step, newCounter = collator.counter, newRNG = collator.locationRNG
        var newOverride = (overrideLR, overrideWD, overrideEMA)
        if trainingState {
            func md(_ k: String) throws -> String {
                guard let s = f.metadata[k] else { throw IJEPAError.format("training state lacks '\(k)' metadata") }
                return s
            }
            // the counters must be able to advance (a step past 2^62 is no real run); steps and
            // the mask sampler keep them below the same limit, so whatever is saved loads
            guard let s = Int64(try md("ijepa.step")), s >= 0, s < stateCounterLimit else { throw IJEPAError.format("invalid 'ijepa.step'") }
            guard let c = Int64(try md("ijepa.mask_counter")), c >= 0, c < stateCounterLimit else { throw IJEPAError.format("invalid 'ijepa.mask_counter'") }
            let r = try md("ijepa.mask_rng").split(separator: ",").compactMap { UInt64($0) }
            guard r.count == 4 else { throw IJEPAError.format("invalid 'ijepa.mask_rng'") }
            let o = try md("ijepa.override").split(separator: ",").compactMap { UInt32($0) }.map { Float(bitPattern: $0) }
            // the same rules as set_schedule_override: negative = schedule, else finite, EMA <= 1
            guard o.count == 3, o.allSatisfy({ $0.isFinite }), o[2] <= 1 else { throw IJEPAError.format("invalid 'ijepa.override'") }
            newStep = s; newCounter = c; newRNG = RNG(state: r); newOverride = (o[0], o[1], o[2])
        }
        // commit
        for (buf, off, v) in staged { (buf.ptr + off).update(from: v, count: v.count) }
        step = newStep
        collator.counter = newCounter
        collator.locationRNG = newRNG
        (overrideLR, overrideWD, overrideEMA) = newOverride
        invalidateGradients()
    }
}

/// Prefixes format and numeric errors with the file they are about.
func namingFile<T>(_ path: String, _ body: () throws -> T) throws -> T {
    do { return try body() } catch let e as IJEPAError {
        switch e {
        case .format(let m): throw IJEPAError.format("\(path): \(m)")
        case .numeric(let m): throw IJEPAError.numeric("\(path): \(m)")
        default: throw e
        }
    }
}

/// The first `shown` names, comma-separated, and how many there are when some are left out.
func listed(_ names: [String], _ shown: Int = 8) -> String {
    names.prefix(shown).joined(separator: ", ") + (names.count > shown ? ", … (\(names.count) in all)" : "")
}

/// Tensor names without DDP's "module." components → the file's names.
func normalizedNames(_ f: SafetensorsFile) throws -> [String: String] {
    var byName: [String: String] = [:]
    for key in f.entries.keys {
        let norm = key.split(separator: ".", omittingEmptySubsequences: false).filter { $0 != "module" }.joined(separator: ".")
        if let other = byName[norm] {
            throw IJEPAError.format("tensors '\(other)' and '\(key)' both name '\(norm)'")
        }
        byName[norm] = key
    }
    return byName
}
