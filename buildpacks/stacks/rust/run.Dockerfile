# Rust programs need only the C library (and OpenSSL when they link it): the suite's base
# and libssl (libssl3 on bookworm, libssl3t64 from trixie on).
ARG OS
FROM ${OS}
RUN apt-get update -q \
 && (apt-get install -y -q --no-install-recommends libssl3t64 >/dev/null 2>&1 \
     || apt-get install -y -q --no-install-recommends libssl3 >/dev/null) \
 && rm -rf /var/lib/apt/lists/*
