/**
 * `deno task demo:s3`: backups in object storage, in about a minute, on a
 * throwaway PostgreSQL and a throwaway Ceph RADOS Gateway (or the S3
 * service the S3_TEST_* variables name). It loads a sample of both
 * LangChain tables, starts the server with `--storage s3://…` exactly as
 * users run it, POSTs a backup that truncates the embeddings, lists the
 * bucket, restores the set from it with the command-line tool, and shows
 * the row counts at each step. Everything is deleted afterwards.
 *
 * @module
 */

import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  ListObjectsV2Command,
} from "@aws-sdk/client-s3";
import { connect, serverTarget } from "../src/database/database.ts";
import { s3Client } from "../tests/s3_client.ts";
import { runMain, startServer } from "./app_process.ts";
import { withS3 } from "./ceph.ts";
import { createFixture } from "./fixture.ts";
import { withDatabase } from "./postgres.ts";

const ROWS = 500;

await withDatabase(async (url) => {
  const sql = await connect(serverTarget(url));
  try {
    await createFixture(sql, { layout: "langchain_postgres", rows: ROWS, dimensions: 16 });
    console.log(
      `Loaded 3 collections and ${ROWS} embeddings (16 dimensions) into a throwaway PostgreSQL.`,
    );
    const counts = async () => {
      const [row] = await sql`SELECT
        (SELECT count(*)::int FROM langchain_pg_collection) AS collections,
        (SELECT count(*)::int FROM langchain_pg_embedding) AS embeddings`;
      console.log(
        `  -> ${row.collections} collections, ${row.embeddings} embeddings in the database`,
      );
    };

    console.log("Starting a throwaway Ceph RADOS Gateway (about 20 s)...");
    await withS3(async (target) => {
      const client = s3Client(target);
      const bucket = target.bucket ?? `pgvector-backups-${crypto.randomUUID().slice(0, 8)}`;
      if (!target.bucket) await client.send(new CreateBucketCommand({ Bucket: bucket }));
      // In a bucket S3_TEST_BUCKET names, a prefix of its own, removed afterwards.
      const PREFIX = target.bucket
        ? `pgvector-demo-${crypto.randomUUID().slice(0, 8)}`
        : "pgvector";
      const storage = `s3://${bucket}/${PREFIX}`;
      const flags = ["--storage", storage, "--s3-endpoint", target.endpoint, "--s3-path-style"];
      // The program reads its credentials the way every AWS tool does.
      const env = {
        AWS_ACCESS_KEY_ID: target.accessKeyId,
        AWS_SECRET_ACCESS_KEY: target.secretAccessKey,
        AWS_REGION: target.region,
      };
      console.log(`S3 endpoint ${target.endpoint}, bucket ${bucket}.`);
      console.log(
        `\n$ export AWS_ACCESS_KEY_ID=${target.accessKeyId} AWS_SECRET_ACCESS_KEY=… AWS_REGION=${target.region}`,
      );
      try {
        console.log(`$ pgvector-backup serve --db … ${flags.join(" ")}`);
        const server = await startServer(["--db", url, ...flags], env);
        let manifest: string;
        try {
          const body = JSON.stringify({ truncate_vector_tables: true });
          console.log(
            `\n$ curl -X POST ${server.base}/api/v0/data_pipeline/vector/backup -d '${body}'`,
          );
          const response = await fetch(`${server.base}/api/v0/data_pipeline/vector/backup`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body,
          });
          const envelope = await response.json();
          console.log(`HTTP ${response.status}`);
          console.log(JSON.stringify(envelope, null, 2));
          if (!envelope.success) throw new Error("the backup failed");
          manifest = envelope.data.manifest_file;
        } finally {
          await server.stop();
        }
        await counts();

        console.log(
          `\nObjects in s3://${bucket}/${PREFIX}/ (as \`aws s3 ls --recursive\` shows them):`,
        );
        const listed = await client.send(
          new ListObjectsV2Command({ Bucket: bucket, Prefix: `${PREFIX}/` }),
        );
        for (const object of listed.Contents ?? []) {
          console.log(`  ${String(object.Size).padStart(9)}  ${object.Key}`);
        }

        const stamp = manifest.match(/^manifest_(.+)\.json$/)![1];
        for (
          const args of [
            ["list", ...flags],
            ["verify", "--timestamp", stamp, ...flags],
            ["restore", "--db", url, "--truncate-before-restore", "--timestamp", stamp, ...flags],
          ]
        ) {
          const shown = args.map((arg) => arg === url ? "…" : arg).join(" ");
          console.log(`\n$ pgvector-backup ${shown}`);
          const run = await runMain(args, { env });
          console.log((run.stdout + run.stderr).trimEnd());
          if (run.code !== 0) throw new Error(`${args[0]} exited with ${run.code}`);
        }
        await counts();
      } finally {
        const left = await client.send(
          new ListObjectsV2Command({ Bucket: bucket, Prefix: `${PREFIX}/` }),
        );
        for (const object of left.Contents ?? []) {
          await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: object.Key }));
        }
        if (!target.bucket) await client.send(new DeleteBucketCommand({ Bucket: bucket }));
        client.destroy();
      }
    });
  } finally {
    await sql.end();
  }
  console.log("\nThe throwaway gateway, its bucket and the database are removed.");
});
