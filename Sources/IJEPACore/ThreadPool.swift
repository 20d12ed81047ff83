import Glibc
import Synchronization

/// A persistent fork/join pool: `threads − 1` workers plus the calling thread. A fork costs
/// about a microsecond (workers spin briefly on an atomic generation counter before sleeping
/// on a condition variable), so even ~50 µs kernels parallelize. One job at a time; the
/// model that owns the pool is used by one thread at a time (the library's thread rule).
final class ThreadPool: @unchecked Sendable {
    let threads: Int
    private var workers: [pthread_t] = []
    private let generation = Atomic<Int>(0)
    private let remaining = Atomic<Int>(0)
    private let sleepers = Atomic<Int>(0)
    private var mutex = pthread_mutex_t()
    private var cond = pthread_cond_t()
    /// The running job: a pointer to the caller's task value and its type (no allocation).
    private var jobBody: UnsafeRawPointer?
    private var jobType: (any PoolTask.Type)?
    private let nextTask = Atomic<Int>(0)
    private var taskCount = 0
    private var stopping = false

    init(threads: Int) {
        self.threads = max(1, threads)
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&cond, nil)
        for w in 1..<self.threads {
            let ctx = Unmanaged.passRetained(WorkerContext(pool: self, index: w)).toOpaque()
            var tid = pthread_t()
            let rc = pthread_create(&tid, nil, { raw in
                let c = Unmanaged<WorkerContext>.fromOpaque(raw!).takeRetainedValue()
                c.pool.workerLoop(c.index)
                return nil
            }, ctx)
            if rc == 0 { workers.append(tid) } else { Unmanaged<WorkerContext>.fromOpaque(ctx).release() }
        }
    }

    deinit {
        pthread_mutex_lock(&mutex)
        stopping = true
        generation.add(1, ordering: .sequentiallyConsistent)
        pthread_cond_broadcast(&cond)
        pthread_mutex_unlock(&mutex)
        for t in workers { pthread_join(t, nil) }
        pthread_cond_destroy(&cond)
        pthread_mutex_destroy(&mutex)
    }

    private final class WorkerContext {
        unowned(unsafe) let pool: ThreadPool   // valid until deinit has joined the worker
        let index: Int
        init(pool: ThreadPool, index: Int) { self.pool = pool; self.index = index }
    }

    private func workerLoop(_ index: Int) {
        var seen = 0
        while true {
            // spin a little, then sleep
            var spins = 0
            while generation.load(ordering: .acquiring) == seen && spins < 4_000 {
                spins += 1
                if spins & 15 == 0 { sched_yield() }
            }
            if generation.load(ordering: .acquiring) == seen {
                pthread_mutex_lock(&mutex)
                sleepers.add(1, ordering: .sequentiallyConsistent)
                while generation.load(ordering: .acquiring) == seen && !stopping {
                    pthread_cond_wait(&cond, &mutex)
                }
                sleepers.subtract(1, ordering: .sequentiallyConsistent)
                pthread_mutex_unlock(&mutex)
            }
            if stopping { return }
            seen = generation.load(ordering: .acquiring)
            if let ty = jobType, let body = jobBody { drain(ty, body, worker: index) }
            remaining.subtract(1, ordering: .releasing)
        }
    }

    /// Takes task indices until none are left (dynamic scheduling: a thread that was
    /// descheduled by another process does not hold the others up).
    private func drain(_ ty: any PoolTask.Type, _ body: UnsafeRawPointer, worker: Int) {
        while true {
            let t = nextTask.add(1, ordering: .relaxed).oldValue
            if t >= taskCount { return }
            ty.invoke(body, t, worker)
        }
    }

    /// Runs body(task, worker) for every task in 0..<tasks on the pool (the caller takes part;
    /// worker in 0..<threads, for per-thread scratch space) and returns when all are done.
    /// Which thread runs which task is not fixed; results must depend on the task index only.
    func run<T: PoolTask>(tasks: Int, _ body: T) {
        if workers.isEmpty || tasks <= 1 {
            for t in 0..<tasks { body(t, 0) }
            return
        }
        withUnsafePointer(to: body) { p in
            jobBody = UnsafeRawPointer(p)
            jobType = T.self
            taskCount = tasks
            nextTask.store(0, ordering: .relaxed)
            remaining.store(workers.count, ordering: .sequentiallyConsistent)
            generation.add(1, ordering: .releasing)
            if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
                pthread_mutex_lock(&mutex)
                pthread_cond_broadcast(&cond)
                pthread_mutex_unlock(&mutex)
            }
            drain(T.self, UnsafeRawPointer(p), worker: 0)
            var spins = 0
            while remaining.load(ordering: .acquiring) > 0 {
                spins += 1
                if spins > 256 { sched_yield() }
            }
            jobBody = nil
            jobType = nil
        }
    }
}

/// A task of ThreadPool.run: a struct holding what the task reads (see ChunkBody).
protocol PoolTask {
    func callAsFunction(_ task: Int, _ worker: Int)
    /// Calls the task stored at `body` (a pointer to Self); provided below.
    static func invoke(_ body: UnsafeRawPointer, _ task: Int, _ worker: Int)
}

extension PoolTask {
    static func invoke(_ body: UnsafeRawPointer, _ task: Int, _ worker: Int) {
        body.assumingMemoryBound(to: Self.self).pointee(task, worker)
    }
}
