/**
 * Jobs: every backup and restore the HTTP door runs is a job with a state,
 * per-table progress and, once finished, its result envelope. A synchronous
 * call is a job awaited; `"async": true` answers 202 at once and the caller
 * polls, so a long backup no longer needs a client holding a connection.
 *
 * @module
 */

import type { TableProgress } from "../../engines/backup.ts";
import type { Envelope } from "../../contract/envelope.ts";
import type {
  JobState,
  JobTableProgress,
  JobView as JobViewShape,
} from "../../contract/responses.ts";
import { BackupError } from "../../contract/errors.ts";
import { isoTimestamp } from "../../util/format.ts";

export type { JobState, JobTableProgress };

/**
 * What `GET .../jobs/<job_id>` answers; `result` is the envelope a
 * synchronous call answers, once the job is finished.
 */
export type JobView = Omit<JobViewShape, "result"> & { result: Envelope | null };

/** Finished jobs kept for polling; older ones are forgotten. */
const FINISHED_KEPT = 100;

/** How many jobs run, wait, and for how long. */
export interface JobLimits {
  /** Jobs running at once; later ones wait in the queue, in order. */
  concurrency: number;
  /** Jobs that may wait; beyond it `start` refuses with 503 and `can_retry`. */
  queueLimit: number;
  /** Seconds a job may run; then its signal aborts and it fails once cleaned up. */
  deadlineSeconds: number;
}

/** What a job's work gets: progress reporting and the signal that stops it. */
export type JobWork = (
  onProgress: (progress: TableProgress) => void,
  signal: AbortSignal,
) => Promise<Envelope>;

/**
 * The jobs of one server process: a bounded queue in front of a few running
 * jobs, so that a flood of requests costs a few database connections, not
 * one each, and no job holds its slot past its deadline.
 */
export class JobRegistry {
  #jobs = new Map<string, JobView>();
  #finished: string[] = [];
  #running = new Set<Promise<Envelope>>();
  #waiting: Array<() => void> = [];
  #active = 0;
  #limits: JobLimits;
  #shutdown: AbortSignal;

  /** `shutdown` aborts every job, running or queued (the server's grace is over). */
  constructor(limits: JobLimits, shutdown: AbortSignal) {
    this.#limits = limits;
    this.#shutdown = shutdown;
  }

  /**
   * Queues `work` as a job; it starts once fewer than `concurrency` jobs run.
   * `work` reports progress through its first argument, stops when its signal
   * aborts, and resolves with the job's envelope (it never rejects: failures
   * are envelopes too). Returns the job and a promise of its envelope.
   * Throws 503 `SERVICE_UNAVAILABLE` when the queue is full.
   */
  start(
    kind: JobView["kind"],
    taskId: string | undefined,
    work: JobWork,
    describeTimeout: (seconds: number) => Envelope,
  ): { job: JobView; done: Promise<Envelope> } {
    if (
      this.#active >= this.#limits.concurrency && this.#waiting.length >= this.#limits.queueLimit
    ) {
      throw new BackupError(
        "SERVICE_UNAVAILABLE",
        `The server is busy: ${this.#active} jobs run and ${this.#waiting.length} wait, its ` +
          "limit; retry later.",
        true,
      );
    }
    const job: JobView = {
      job_id: crypto.randomUUID(),
      kind,
      state: "queued",
      task_id: taskId ?? null,
      created_at: isoTimestamp(new Date()),
      started_at: null,
      finished_at: null,
      progress: {},
      result: null,
    };
    this.#jobs.set(job.job_id, job);
    const onProgress = (p: TableProgress) => {
      job.progress[p.table] = {
        rows: p.rows,
        estimated_rows: p.estimatedRows,
        bytes: p.bytes,
        rows_per_second: p.rowsPerSecond,
        elapsed: p.elapsed,
        done: p.done,
      };
    };
    const done = (async () => {
      await this.#slot();
      const deadline = new AbortController();
      const seconds = this.#limits.deadlineSeconds;
      const timer = setTimeout(() => deadline.abort(), seconds * 1000);
      let envelope: Envelope;
      try {
        job.state = "running";
        job.started_at = isoTimestamp(new Date());
        envelope = await work(onProgress, AbortSignal.any([this.#shutdown, deadline.signal]));
      } finally {
        clearTimeout(timer);
        this.#release();
      }
      // The work was stopped by its deadline, not by a shutdown: say which.
      if (deadline.signal.aborted && !envelope.success) envelope = describeTimeout(seconds);
      job.state = envelope.success ? "succeeded" : "failed";
      job.finished_at = isoTimestamp(new Date());
      job.result = envelope;
      this.#retire(job.job_id);
      return envelope;
    })();
    this.#running.add(done);
    done.finally(() => this.#running.delete(done));
    return { job, done };
  }

  /** Resolves once this job may run: at once when a slot is free, else in queue order. */
  #slot(): Promise<void> {
    if (this.#active < this.#limits.concurrency) {
      this.#active++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  /** Hands a finished job's slot to the first waiting one. */
  #release(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#active--;
  }

  /**
   * Resolves when no job runs or waits. A shutdown waits for it: an async
   * job's HTTP request was answered long ago, so the server alone would not wait.
   */
  async settled(): Promise<void> {
    while (this.#running.size > 0) await Promise.allSettled([...this.#running]);
  }

  /** One job, or undefined when unknown or forgotten. */
  get(id: string): JobView | undefined {
    return this.#jobs.get(id);
  }

  /** Running and queued jobs and the last finished ones, newest first. */
  list(): JobView[] {
    return [...this.#jobs.values()].reverse();
  }

  #retire(id: string): void {
    this.#finished.push(id);
    while (this.#finished.length > FINISHED_KEPT) this.#jobs.delete(this.#finished.shift()!);
  }
}
