# syntax=docker/dockerfile:1
# The entra-sync image: one binary, every role (migrate, producer, worker, sync,
# status, resume, check-config, and the simulators for demos).
#
#   docker build -t entra-sync .
#   docker run --rm entra-sync --help

# --- build ------------------------------------------------------------------
FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY . .
# The caches keep crates.io downloads and incremental artifacts between builds;
# the binary is copied out of the cached target dir before the layer ends.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p entra-sync-cli \
 && install -D -m 0755 target/release/entra-sync /out/entra-sync

# --- runtime ----------------------------------------------------------------
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 entra-sync \
 && useradd --system --uid 10001 --gid entra-sync --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin entra-sync
COPY --from=builder /out/entra-sync /usr/local/bin/entra-sync
# Numeric, so Kubernetes' runAsNonRoot can verify it without a passwd lookup.
USER 10001:10001
ENV ENTRA_SYNC_LOG_FORMAT=json
# Producer (webhook, health, metrics) and worker (health, metrics) ports when
# their `listen` is set to 0.0.0.0:8080 / 0.0.0.0:8081.
EXPOSE 8080 8081
ENTRYPOINT ["entra-sync"]
CMD ["--help"]
