# The builder image of the base stack: what a buildpack's assemble runs in.
# Busybox gives the shell tools assemble scripts use; nothing is downloaded at build time.
FROM debian:bookworm-slim
RUN apt-get update -q && apt-get install -y -q --no-install-recommends busybox ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN useradd --uid 1001 --create-home --home-dir /workspace hoist
