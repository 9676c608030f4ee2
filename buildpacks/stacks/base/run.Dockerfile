# The run image of the base stack: busybox carries the small HTTP server the static
# buildpack uses.
ARG OS
FROM ${OS}
RUN apt-get update -q && apt-get install -y -q --no-install-recommends busybox >/dev/null \
 && rm -rf /var/lib/apt/lists/*
