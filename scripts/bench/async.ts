/**
 * The async backup: `main.ts serve` on the main fixture gets three
 * `{"async": true}` backups in turn; how long its 202 answer takes, and
 * whether the job's progress rises while it runs.
 *
 * @module
 */

import { join } from "node:path";
import type { Envelope } from "../../src/contract/envelope.ts";
import type { JobView } from "../../src/doors/http/jobs.ts";
import { startServer } from "../app_process.ts";
import type { Measurement, Verdict } from "./measurement.ts";
import { median, progress, round } from "./runner.ts";

const API = "/api/v0/data_pipeline/vector";
/** Async backups sent to the server, one after the other. */
const ASYNC_BACKUPS = 3;
/** How often a job's status is asked for, and for how long at most. */
const POLL_MS = 50;
const JOB_TIMEOUT_MS = 600_000;
/** Every 202 answer sooner than this. */
const ANSWER_TARGET_MS = 100;

/** One async backup through `main.ts serve`. */
interface AsyncSample {
  /** From sending the POST to having read its 202 answer. */
  answerMs: number;
  /** From sending the POST to the first poll that found the job finished. */
  jobSeconds: number;
  polls: number;
  /** The rows in the job's progress at each poll that found it running. */
  runningRows: number[];
}

/** What `--json` shows under `async_backup`, one entry per backup in the arrays. */
interface AsyncResults {
  backups: number;
  answer_ms: number[];
  median_answer_ms: number;
  max_answer_ms: number;
  job_seconds: number[];
  polls: number[];
  /** Whether the job's rows rose, and never fell, over the polls that found it running. */
  progress_rose: boolean[];
}

/** POSTs one `{"async": true}` backup, then polls its job until it is finished. */
async function asyncBackup(base: string): Promise<AsyncSample> {
  const started = performance.now();
  const response = await fetch(`${base}${API}/backup`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ async: true }),
  });
  const answer = await response.json() as Envelope;
  const answerMs = performance.now() - started;
  if (response.status !== 202) {
    throw new Error(`POST ${API}/backup answered ${response.status}: ${answer.data.response}`);
  }
  const statusUrl = `${base}${answer.data.status_url}`;
  const runningRows: number[] = [];
  // Bounded, so that a job that never ends fails the benchmark instead of hanging it.
  const maxPolls = JOB_TIMEOUT_MS / POLL_MS;
  for (let polls = 1; polls <= maxPolls; polls++) {
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    const status = await fetch(statusUrl);
    const envelope = await status.json() as Envelope;
    if (!status.ok) {
      throw new Error(
        `GET ${answer.data.status_url} answered ${status.status}: ${envelope.data.response}`,
      );
    }
    const job = envelope.data as unknown as JobView;
    if (job.state === "failed") {
      throw new Error(`the async backup failed: ${job.result?.data.response}`);
    }
    if (job.state === "succeeded") {
      return { answerMs, jobSeconds: (performance.now() - started) / 1000, polls, runningRows };
    }
    if (job.state === "running") {
      runningRows.push(
        Object.values(job.progress).reduce((sum, table) => sum + table.rows, 0),
      );
    }
  }
  throw new Error(`the async backup was not finished after ${JOB_TIMEOUT_MS / 1000} s`);
}

/** Whether the rows rose over the polls that found the job running, and never fell. */
function progressRose(rows: number[]): boolean {
  return rows.length >= 2 && rows[rows.length - 1] > rows[0] &&
    rows.every((value, i) => i === 0 || value >= rows[i - 1]);
}

/** `{"async": true}` backups through `main.ts serve`. */
export const asyncMeasurement: Measurement<AsyncSample[], AsyncResults> = {
  name: "async backup",

  /**
   * Starts `main.ts serve` on the main fixture and sends it the backups,
   * one after the other, each followed to its end. Every set is deleted
   * once its job is done, so the disk holds one at most.
   */
  async measure({ scratch, sizes: [{ url }] }) {
    const dataDir = join(scratch, "served");
    const server = await startServer(["--db", url, "--data-dir", dataDir]);
    try {
      const samples: AsyncSample[] = [];
      for (let backup = 1; backup <= ASYNC_BACKUPS; backup++) {
        const sample = await asyncBackup(server.base);
        // The server makes its data folder again for the next backup.
        await Deno.remove(dataDir, { recursive: true });
        samples.push(sample);
        progress(
          `async backup ${backup}/${ASYNC_BACKUPS}: 202 in ${sample.answerMs.toFixed(1)} ms, ` +
            `done in ${sample.jobSeconds.toFixed(2)} s after ${sample.polls} polls`,
        );
      }
      return samples;
    } finally {
      await server.stop();
    }
  },

  summarize(samples) {
    const answers = samples.map((sample) => round(sample.answerMs));
    return {
      backups: samples.length,
      answer_ms: answers,
      median_answer_ms: median(answers),
      max_answer_ms: Math.max(...answers),
      job_seconds: samples.map((sample) => round(sample.jobSeconds)),
      polls: samples.map((sample) => sample.polls),
      progress_rose: samples.map((sample) => progressRose(sample.runningRows)),
    };
  },

  verdicts: (results): Verdict[] => [{
    // Every answer counts: a client waits for the slowest one too.
    target: `async backup answers 202 in < ${ANSWER_TARGET_MS} ms`,
    measured: `median ${results.median_answer_ms.toFixed(1)} ms, ` +
      `max ${results.max_answer_ms.toFixed(1)} ms`,
    met: results.max_answer_ms < ANSWER_TARGET_MS,
  }],

  report(results) {
    const rose = results.progress_rose.filter(Boolean).length;
    return [
      `Async backups: ${results.backups} POSTs of {"async": true} to ${API}/backup, one after`,
      `the other, each job polled every ${POLL_MS} ms until finished.`,
      `  202 answer: median ${results.median_answer_ms.toFixed(1)} ms, ` +
      `max ${results.max_answer_ms.toFixed(1)} ms ` +
      `(${results.answer_ms.map((ms) => ms.toFixed(1)).join(", ")} ms)`,
      `  progress rose while running: ${rose} of ${results.backups} jobs ` +
      `(${results.polls.join(", ")} polls)`,
      `  jobs finished after ${results.job_seconds.map((s) => s.toFixed(2)).join(", ")} s`,
    ];
  },

  json: (async_backup) => ({ async_backup }),
};
