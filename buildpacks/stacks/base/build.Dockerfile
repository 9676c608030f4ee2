# The builder image of the base stack: busybox gives the shell tools assemble scripts use.
ARG OS
FROM ${OS}
RUN apt-get update -q && apt-get install -y -q --no-install-recommends busybox >/dev/null \
 && rm -rf /var/lib/apt/lists/*
