/**
 * The job queue on its own, with fake work functions: how many run at once,
 * the order the rest start in, the queue's limit, the deadline, a shutdown,
 * progress, and how many finished jobs are kept. No database, no server.
 */

import assert from "node:assert/strict";
import { JobRegistry, type JobWork } from "./jobs.ts";
import { type Envelope, errorEnvelope, successEnvelope } from "../../contract/envelope.ts";
import { BackupError } from "../../contract/errors.ts";

const ok = (what: string): Envelope => successEnvelope(`done: ${what}`, {});
const failed = (what: string): Envelope =>
  errorEnvelope(new BackupError("DATABASE_ERROR", `failed: ${what}`, false));
const timedOut = (seconds: number): Envelope =>
  errorEnvelope(new BackupError("SERVICE_UNAVAILABLE", `deadline of ${seconds} s`, true));

/** A work function the test finishes by hand; `started` tells whether it began. */
function gate(name: string) {
  const finish = Promise.withResolvers<Envelope>();
  const state = { started: false, signal: undefined as AbortSignal | undefined };
  const work: JobWork = (_progress, signal) => {
    state.started = true;
    state.signal = signal;
    return finish.promise;
  };
  return { work, state, finish: () => finish.resolve(ok(name)) };
}

/** Work that ends only when its signal aborts, with a failure, as the engines do. */
const untilAborted: JobWork = (_progress, signal) =>
  new Promise((resolve) => {
    if (signal.aborted) resolve(failed("stopped"));
    signal.addEventListener("abort", () => resolve(failed("stopped")));
  });

/** Lets queued promise callbacks run. */
const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

Deno.test("jobs run `concurrency` at a time and the rest start in queue order", async () => {
  const jobs = new JobRegistry(
    { concurrency: 2, queueLimit: 5, deadlineSeconds: 60 },
    new AbortController().signal,
  );
  const gates = ["a", "b", "c", "d"].map(gate);
  const started = gates.map((g, i) => jobs.start("backup", `task_${i}`, g.work, timedOut));
  await tick();
  assert.deepEqual(gates.map((g) => g.state.started), [true, true, false, false]);
  assert.deepEqual(started.map((s) => s.job.state), ["running", "running", "queued", "queued"]);
  gates[1].finish();
  assert.equal((await started[1].done).success, true);
  await tick();
  assert.deepEqual(gates.map((g) => g.state.started), [true, true, true, false]);
  gates[0].finish();
  await started[0].done;
  await tick();
  assert.deepEqual(gates.map((g) => g.state.started), [true, true, true, true]);
  gates[2].finish();
  gates[3].finish();
  await jobs.settled();
  assert.deepEqual(started.map((s) => s.job.state), [
    "succeeded",
    "succeeded",
    "succeeded",
    "succeeded",
  ]);
  assert.equal(started[0].job.task_id, "task_0");
  assert.ok(started[0].job.started_at && started[0].job.finished_at);
});

Deno.test("a full queue refuses with 503 and can_retry, and takes jobs again once it drains", async () => {
  const jobs = new JobRegistry(
    { concurrency: 1, queueLimit: 1, deadlineSeconds: 60 },
    new AbortController().signal,
  );
  const running = gate("running");
  const waiting = gate("waiting");
  const first = jobs.start("backup", undefined, running.work, timedOut);
  const second = jobs.start("restore", undefined, waiting.work, timedOut);
  assert.throws(
    () => jobs.start("backup", undefined, gate("refused").work, timedOut),
    (error: unknown) =>
      error instanceof BackupError && error.status === 503 && error.canRetry === true &&
      /busy: 1 jobs run and 1 wait/.test(error.message),
  );
  assert.equal(jobs.list().length, 2, "the refused job is not listed");
  running.finish();
  await first.done;
  await tick();
  const third = gate("third");
  const accepted = jobs.start("backup", undefined, third.work, timedOut);
  waiting.finish();
  third.finish();
  await Promise.all([second.done, accepted.done]);
  assert.equal(accepted.job.state, "succeeded");
});

Deno.test("a job past its deadline is aborted and fails with the deadline's envelope", async () => {
  const jobs = new JobRegistry(
    { concurrency: 1, queueLimit: 1, deadlineSeconds: 0.05 },
    new AbortController().signal,
  );
  const { job, done } = jobs.start("backup", "slow", untilAborted, timedOut);
  const envelope = await done;
  assert.deepEqual([envelope.code, envelope.data.error_type, envelope.data.can_retry], [
    503,
    "SERVICE_UNAVAILABLE",
    true,
  ]);
  assert.match(envelope.data.response as string, /deadline of 0.05 s/);
  assert.equal(job.state, "failed");
  assert.equal(job.result, envelope);
  // Its slot is free again: the next job runs.
  const next = gate("next");
  const after = jobs.start("backup", undefined, next.work, timedOut);
  await tick();
  assert.equal(next.state.started, true);
  next.finish();
  await after.done;
});

Deno.test("a job that succeeds despite its deadline keeps its success", async () => {
  const jobs = new JobRegistry(
    { concurrency: 1, queueLimit: 1, deadlineSeconds: 0.01 },
    new AbortController().signal,
  );
  const late: JobWork = (_p, signal) =>
    new Promise((resolve) => signal.addEventListener("abort", () => resolve(ok("late"))));
  const { job, done } = jobs.start("backup", undefined, late, timedOut);
  assert.equal((await done).data.response, "done: late");
  assert.equal(job.state, "succeeded");
});

Deno.test("a shutdown aborts running and queued jobs, and their own envelopes stay", async () => {
  const shutdown = new AbortController();
  const jobs = new JobRegistry(
    { concurrency: 1, queueLimit: 3, deadlineSeconds: 60 },
    shutdown.signal,
  );
  const runs = [0, 1, 2].map(() => jobs.start("backup", undefined, untilAborted, timedOut));
  await tick();
  shutdown.abort();
  const envelopes = await Promise.all(runs.map((r) => r.done));
  for (const envelope of envelopes) assert.equal(envelope.data.response, "failed: stopped");
  assert.deepEqual(runs.map((r) => r.job.state), ["failed", "failed", "failed"]);
  await jobs.settled();
});

Deno.test("progress is shown per table in the job's view", async () => {
  const jobs = new JobRegistry(
    { concurrency: 1, queueLimit: 1, deadlineSeconds: 60 },
    new AbortController().signal,
  );
  let job = undefined as ReturnType<JobRegistry["start"]>["job"] | undefined;
  const work: JobWork = (progress) => {
    progress({
      table: "langchain_pg_embedding",
      ...{ rows: 10, bytes: 2048, estimatedRows: null, elapsed: 0.5, rowsPerSecond: 20 },
      ...{ milestone: true, done: false },
    });
    assert.deepEqual(job?.progress, {
      langchain_pg_embedding: {
        rows: 10,
        estimated_rows: null,
        bytes: 2048,
        rows_per_second: 20,
        elapsed: 0.5,
        done: false,
      },
    });
    return Promise.resolve(ok("progress"));
  };
  const started = jobs.start("backup", undefined, work, timedOut);
  job = started.job;
  assert.equal((await started.done).success, true);
});

Deno.test("the last 100 finished jobs are kept, newest first; older ones are forgotten", async () => {
  const jobs = new JobRegistry(
    { concurrency: 4, queueLimit: 200, deadlineSeconds: 60 },
    new AbortController().signal,
  );
  const runs = Array.from(
    { length: 103 },
    (_, i) => jobs.start("backup", `t${i}`, () => Promise.resolve(ok(`${i}`)), timedOut),
  );
  await Promise.all(runs.map((r) => r.done));
  for (const r of runs.slice(0, 3)) assert.equal(jobs.get(r.job.job_id), undefined);
  assert.equal(jobs.get(runs[3].job.job_id), runs[3].job);
  const listed = jobs.list();
  assert.equal(listed.length, 100);
  assert.equal(listed[0].task_id, "t102");
  assert.equal(listed[99].task_id, "t3");
});
