/**
 * The prefork model on node:cluster: the primary forks N workers that accept on the shared
 * listening sockets (SCHED_NONE: the kernel hands each connection to a waiting worker, as with
 * qpsmtpd-prefork). A worker that dies is replaced; SIGHUP is passed on as a reload; SIGTERM and
 * SIGINT stop every worker gracefully and then the primary.
 */
import type { Worker } from 'node:cluster';
import { lazyCluster } from './lazy-builtins.ts';

/** A worker exits with this when its configuration cannot be loaded: restarting would not help. */
export const EXIT_CONFIG = 78;

export type WorkerMessage = { type: 'reload' } | { type: 'stop' };
export type PrimaryMessage = { type: 'ready' };

export interface PrimaryOptions {
  readonly workers: number;
  readonly log: (line: string) => void;
}

/** Run the primary: fork, supervise, forward signals. Resolves with the exit code. */
export function runPrimary(options: PrimaryOptions): Promise<number> {
  const cluster = lazyCluster();
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  return new Promise((resolve) => {
    let stopping = false;
    let exitCode = 0;
    let served = false;
    let configRetryMs = 0;
    const recentDeaths: number[] = [];
    // Workers that have said `ready`, and those a SIGHUP found still loading: Node drops a message
    // to a worker that has no listener yet, so what the primary says before `ready` is said again.
    const ready = new WeakSet<Worker>();
    const reloadWhenReady = new WeakSet<Worker>();

    const fork = (): Worker => {
      const worker = cluster.fork();
      worker.on('message', (message: PrimaryMessage) => {
        if (message?.type !== 'ready') return;
        ready.add(worker);
        // Without this the worker would serve on, and the primary wait for it, forever.
        if (stopping) {
          tell(worker, { type: 'stop' });
          return;
        }
        // It may have read the configuration before the change the SIGHUP announced.
        if (reloadWhenReady.has(worker)) tell(worker, { type: 'reload' });
        served = true;
        configRetryMs = 0;
        options.log(`worker ${worker.process.pid} ready`);
      });
      return worker;
    };

    const forkLater = (ms: number): void => {
      setTimeout(() => {
        if (!stopping) fork();
      }, ms);
    };

    const workers = (): Worker[] => Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);

    const stopAll = (code: number): void => {
      if (stopping) return;
      stopping = true;
      exitCode = code;
      for (const w of workers()) if (ready.has(w)) tell(w, { type: 'stop' });
      if (workers().length === 0) finish();
    };

    const finish = (): void => {
      process.off('SIGTERM', onTerm);
      process.off('SIGINT', onTerm);
      process.off('SIGHUP', onHup);
      resolve(exitCode);
    };

    cluster.on('exit', (worker, code, signal) => {
      if (stopping) {
        if (workers().length === 0) finish();
        return;
      }
      if (code === EXIT_CONFIG) {
        if (!served) {
          options.log(`worker ${worker.process.pid} could not load the configuration: stopping`);
          stopAll(1);
          return;
        }
        // The configuration on disk broke after start: the running workers go on serving with the
        // one they loaded; the replacement is tried again, less and less often, until it loads.
        configRetryMs = Math.min(60_000, configRetryMs === 0 ? 2000 : configRetryMs * 2);
        options.log(`worker ${worker.process.pid} could not load the configuration: ${workers().length} worker(s) go on; trying again in ${configRetryMs / 1000} s`);
        forkLater(configRetryMs);
        return;
      }
      options.log(`worker ${worker.process.pid} died (${signal ?? `exit ${code}`}): starting a new one`);
      const now = Date.now();
      recentDeaths.push(now);
      while (recentDeaths.length > 0 && recentDeaths[0]! < now - 10_000) recentDeaths.shift();
      // A worker dying over and over (a plugin crashing at start) is restarted at most once a second.
      forkLater(recentDeaths.length > options.workers * 3 ? 1000 : 0);
    });

    const onTerm = (): void => stopAll(0);
    const onHup = (): void => {
      for (const w of workers()) {
        if (ready.has(w)) tell(w, { type: 'reload' });
        else reloadWhenReady.add(w);
      }
    };
    process.on('SIGTERM', onTerm);
    process.on('SIGINT', onTerm);
    process.on('SIGHUP', onHup);

    for (let i = 0; i < options.workers; i++) fork();
  });
}

/**
 * Send to a worker that may be dying: its channel can be closed before its 'exit' is seen (two
 * workers failing at once). Without the callback a closed channel is an 'error' event that would
 * bring the primary down; a worker that is gone needs no message.
 */
function tell(worker: Worker, message: WorkerMessage): void {
  if (worker.isConnected()) worker.send(message, () => undefined);
}

/** In a worker: deliver the primary's messages. */
export function onPrimaryMessage(handler: (message: WorkerMessage) => void): void {
  process.on('message', (message: WorkerMessage) => handler(message));
}

/** In a worker: tell the primary we accept connections. */
export function reportReady(): void {
  process.send?.({ type: 'ready' } satisfies PrimaryMessage);
}

/** In a worker that has stopped serving: close the channel to the primary, which would keep the process alive. */
export function leavePrimary(): void {
  lazyCluster().worker?.disconnect();
}

/**
 * True in a worker of `--workers N`. A worker runs with the primary's arguments, so a process
 * started without --workers is never one, and node:cluster (some milliseconds to load) stays out
 * of its start-up. (Node removes NODE_UNIQUE_ID from a worker's environment once it is set up.)
 */
export function isWorker(workers: number): boolean {
  return workers > 0 && lazyCluster().isWorker;
}
