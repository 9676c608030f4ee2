# Rust as the Debian suite carries it (cargo and rustc), with what common crates need to
# build: a C compiler, pkg-config and OpenSSL's headers.
ARG OS
FROM ${OS}
RUN apt-get update -q && apt-get install -y -q --no-install-recommends cargo rustc gcc libc6-dev pkg-config \
    libssl-dev git >/dev/null \
 && rm -rf /var/lib/apt/lists/* && rustc --version
