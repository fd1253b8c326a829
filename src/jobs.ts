/**
 * Jobs: every backup and restore the HTTP door runs is a job with a state,
 * per-table progress and, once finished, its result envelope. A synchronous
 * call is a job awaited; `"async": true` answers 202 at once and the caller
 * polls, so a long backup no longer needs a client holding a connection.
 *
 * @module
 */

import type { TableProgress } from "./backup.ts";
import type { Envelope } from "./envelope.ts";
import { isoTimestamp } from "./format.ts";

/** Where a job is in its life. */
export type JobState = "queued" | "running" | "succeeded" | "failed";

/** One table's progress, as job status shows it. */
export interface JobTableProgress {
  rows: number;
  /** From `pg_class.reltuples`; null when the table was never analyzed. */
  estimated_rows: number | null;
  bytes: number;
  rows_per_second: number;
  elapsed: number;
  done: boolean;
}

/** What `GET .../jobs/<job_id>` answers. */
export interface JobView {
  job_id: string;
  kind: "backup" | "restore";
  state: JobState;
  task_id: string | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  progress: Record<string, JobTableProgress>;
  /** The envelope a synchronous call answers, once the job is finished. */
  result: Envelope | null;
}

/** Finished jobs kept for polling; older ones are forgotten. */
const FINISHED_KEPT = 100;

/** The jobs of one server process. */
export class JobRegistry {
  #jobs = new Map<string, JobView>();
  #finished: string[] = [];
  #running = new Set<Promise<Envelope>>();

  /**
   * Starts `work` as a job. `work` reports progress through its argument and
   * resolves with the job's envelope (it never rejects: failures are
   * envelopes too). Returns the job and a promise of its envelope.
   */
  start(
    kind: JobView["kind"],
    taskId: string | undefined,
    work: (onProgress: (progress: TableProgress) => void) => Promise<Envelope>,
  ): { job: JobView; done: Promise<Envelope> } {
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
      await Promise.resolve();
      job.state = "running";
      job.started_at = isoTimestamp(new Date());
      const envelope = await work(onProgress);
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

  /**
   * Resolves when no job runs. A shutdown waits for it: an async job's HTTP
   * request was answered long ago, so the server alone would not wait.
   */
  async settled(): Promise<void> {
    while (this.#running.size > 0) await Promise.allSettled([...this.#running]);
  }

  /** One job, or undefined when unknown or forgotten. */
  get(id: string): JobView | undefined {
    return this.#jobs.get(id);
  }

  /** Running jobs and the last finished ones, newest first. */
  list(): JobView[] {
    return [...this.#jobs.values()].reverse();
  }

  #retire(id: string): void {
    this.#finished.push(id);
    while (this.#finished.length > FINISHED_KEPT) this.#jobs.delete(this.#finished.shift()!);
  }
}
