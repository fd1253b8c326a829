# pgvector-backup as a container: compiled in the build stage, run as a
# single binary on a small glibc base as a non-root user.
# Not built by this project's CI (no Docker engine there); see README.

FROM denoland/deno:2.9.6 AS build
WORKDIR /src
COPY deno.json deno.lock ./
COPY main.ts ./
COPY src ./src
RUN deno compile -P=app --v8-flags=--max-semi-space-size=1 --frozen --output /out/pgvector-backup main.ts

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/pgvector-backup /usr/local/bin/pgvector-backup
WORKDIR /data
USER nonroot
EXPOSE 8084
HEALTHCHECK --interval=30s --timeout=6s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/pgvector-backup", "health", "--url", "http://127.0.0.1:8084/healthz"]
ENTRYPOINT ["/usr/local/bin/pgvector-backup"]
# Listening on 0.0.0.0 needs a token: without PGVECTOR_BACKUP_TOKEN (or with an empty one) the
# server refuses to start, so a container is never an open door.
CMD ["serve", "--host", "0.0.0.0", "--port", "8084", "--data-dir", "/data/training_data"]
