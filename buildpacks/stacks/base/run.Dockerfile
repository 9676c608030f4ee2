# The run image of the base stack: what an app built on it runs in.
# Busybox carries the small HTTP server the static buildpack uses.
FROM debian:bookworm-slim
RUN apt-get update -q && apt-get install -y -q --no-install-recommends busybox ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN useradd --uid 1001 --no-create-home --home-dir /app hoist
