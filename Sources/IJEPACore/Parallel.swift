import Glibc

/// The threads a model's kernels use: a persistent pool (see ThreadPool) and fork/join loops
/// over index ranges. Work smaller than `grain` items per chunk runs on the calling thread.
/// OpenBLAS itself runs single-threaded inside these loops: one parallel runtime, no two
/// thread pools fighting over the same cores.
public final class Exec: @unchecked Sendable {
    public let threads: Int
    let pool: ThreadPool
    /// Per-call scratch for kernels (grows, never shrinks; one kernel at a time uses it).
    let scratch = FloatBuffer()

    public init(threads: Int) {
        self.threads = max(1, threads)
        pool = ThreadPool(threads: self.threads)
    }

    /// A single-threaded executor, for kernels called inside an already parallel region.
    public static let serial = Exec(threads: 1)

    public static var hardwareThreads: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }

    /// The thread-count rule of every model, encoder and config: n <= 0 means all cores, at
    /// most 1024. Returns the threads to run.
    public static func threads(_ n: Int) throws(IJEPAError) -> Int {
        if n > 1024 { throw .invalidArgument("n_threads must be <= 1024 (<= 0: all cores), got \(n)") }
        return n > 0 ? n : hardwareThreads
    }

    /// Memory available to new allocations (MemAvailable of /proc/meminfo; physical memory
    /// where that cannot be read), in bytes.
    public static var availableMemory: Double {
        var avail = memAvailable
        // an address-space limit (ulimit -v) bounds what this process can still allocate
        var lim = rlimit()
        if getrlimit(Int32(RLIMIT_AS.rawValue), &lim) == 0 && lim.rlim_cur != rlim_t.max {
            let used = virtualSize
            avail = min(avail, max(0, Double(lim.rlim_cur) - used))
        }
        // a cgroup v2 memory limit (containers, CI runners) on this process's cgroup or an ancestor
        if let c = cgroupHeadroom { avail = min(avail, c) }
        return avail
    }

    /// min over this process's cgroup and its ancestors of memory.max − memory.current (cgroup
    /// v2), nil when no limit is set or cgroups are not mounted.
    static var cgroupHeadroom: Double? {
        guard let f = fopen("/proc/self/cgroup", "r") else { return nil }
        var line = [CChar](repeating: 0, count: 4096)
        var path: String?
        while fgets(&line, 4096, f) != nil {
            let s = String(decoding: line.prefix { $0 != 0 && $0 != 10 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if s.hasPrefix("0::") { path = String(s.dropFirst(3)) }
        }
        fclose(f)
        var best: Double?
        // cgroup v1 (hybrid hosts, older containers): the memory controller's mount is the
        // container's own cgroup; "no limit" is a number near 2^63.
        if let limit = readNumber("/sys/fs/cgroup/memory/memory.limit_in_bytes"), limit < 0x1p62,
           let used = readNumber("/sys/fs/cgroup/memory/memory.usage_in_bytes") {
            best = max(0, limit - used)
        }
        guard var dir = path, dir.hasPrefix("/") else { return best }
        while true {
            let base = "/sys/fs/cgroup" + (dir == "/" ? "" : dir)
            if let limit = readNumber(base + "/memory.max"), let used = readNumber(base + "/memory.current") {
                best = min(best ?? .infinity, max(0, limit - used))
            }
            if dir == "/" || dir.isEmpty { break }
            if let slash = dir.lastIndex(of: "/") { dir = slash == dir.startIndex ? "/" : String(dir[..<slash]) } else { break }
        }
        return best
    }

    /// The first decimal number in a small file; nil for "max", a missing file or garbage.
    static func readNumber(_ path: String) -> Double? {
        guard let f = fopen(path, "r") else { return nil }
        defer { fclose(f) }
        var buf = [CChar](repeating: 0, count: 64)
        guard fgets(&buf, 64, f) != nil else { return nil }
        let s = String(decoding: buf.prefix { $0 != 0 && $0 != 10 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return Double(s)
    }

    /// This process's virtual size in bytes (/proc/self/statm).
    static var virtualSize: Double {
        guard let f = fopen("/proc/self/statm", "r") else { return 0 }
        defer { fclose(f) }
        var pages: Int = 0
        if fscanf_int(f, &pages) { return Double(pages) * Double(sysconf(Int32(_SC_PAGESIZE))) }
        return 0
    }

    static var memAvailable: Double {
        if let f = fopen("/proc/meminfo", "r") {
            defer { fclose(f) }
            var line = [CChar](repeating: 0, count: 256)
            while fgets(&line, 256, f) != nil {
                let s = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                if s.hasPrefix("MemAvailable:") {
                    let digits = s.split(separator: " ").compactMap { Double($0) }
                    if let kb = digits.first { return kb * 1024 }
                }
            }
        }
        return physicalMemory
    }

    /// Physical memory in bytes.
    public static var physicalMemory: Double { Double(sysconf(Int32(_SC_PHYS_PAGES))) * Double(sysconf(Int32(_SC_PAGESIZE))) }

    /// Number of chunks `forEachChunk(n, grain:)` splits n items into: up to two per thread
    /// (taken dynamically), each at least `grain` items.
    public func chunkCount(_ n: Int, grain: Int) -> Int {
        if n <= 0 { return 0 }
        return min(threads == 1 ? 1 : 2 * threads, max(1, n / max(1, grain)))
    }

    /// Calls `body(chunk, range)` on disjoint chunks covering 0..<n, in parallel when
    /// worthwhile; chunk numbers are 0..<chunkCount (for per-chunk scratch space). Chunk
    /// boundaries depend only on n, grain and threads, so per-chunk results are reproducible.
    @inline(__always)
    func forEach<B: ChunkBody>(_ n: Int, grain: Int = 1, _ body: B) {
        let chunks = chunkCount(n, grain: grain)
        if chunks == 0 { return }
        if chunks == 1 { body(0, 0..<n); return }
        pool.run(tasks: chunks, ChunkTask(body: body, n: n, chunks: chunks))
    }
}

extension Exec {
    /// Calls `body(i, i..<i+1)` for every i in 0..<n, one task per item, handed out to the
    /// threads as they become free (items of very different sizes, e.g. one per tensor).
    func forEachItem<B: ChunkBody>(_ n: Int, _ body: B) {
        if n <= 0 { return }
        pool.run(tasks: n, ItemTask(body: body))
    }
}

/// Item c as a pool task (Exec.forEachItem).
struct ItemTask<B: ChunkBody>: PoolTask {
    let body: B
    @inline(__always)
    func callAsFunction(_ c: Int, _ worker: Int) { body(c, c..<(c + 1)) }
}

/// The body of a parallel loop over chunks of an index range. Parallel bodies are structs, not
/// closures: handing a closure to other threads needs a heap box per parallel region (Swift's
/// withoutActuallyEscaping), and a steady-state training step must not allocate.
protocol ChunkBody {
    func callAsFunction(_ chunk: Int, _ range: Range<Int>)
}

/// Chunk c of n items split into `chunks` as a pool task.
struct ChunkTask<B: ChunkBody>: PoolTask {
    let body: B, n: Int, chunks: Int
    @inline(__always)
    func callAsFunction(_ c: Int, _ worker: Int) {
        let lo = n * c / chunks, hi = n * (c + 1) / chunks
        if lo < hi { body(c, lo..<hi) }
    }
}

/// Reads one decimal integer from f.
func fscanf_int(_ f: UnsafeMutablePointer<FILE>, _ out: inout Int) -> Bool {
    var buf = [CChar](repeating: 0, count: 64)
    guard fgets(&buf, 64, f) != nil else { return false }
    let s = String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    guard let first = s.split(separator: " ").first, let v = Int(first) else { return false }
    out = v
    return true
}
