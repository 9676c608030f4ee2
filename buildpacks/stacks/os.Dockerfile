# What every stack shares, on one Debian suite (FROM is debian:bookworm-slim or
# hoist/debian:<suite>): ca-certificates plus the extra CA certificates hoistd was given
# (by default the host's /usr/local/share/ca-certificates), with every toolchain told
# to use the system store; the unprivileged `hoist` user (uid 1001) that builds and runs
# apps; and the folders a build fills: /app (the app), /deps (its dependencies),
# /workspace (the builder's home and the source), and /cache, where the app's cache volume is
# mounted (a new volume takes the owner of the folder it is mounted on).
ARG FROM
FROM ${FROM}
ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8
# What Debian's official images carry as docker-clean: apt keeps no downloaded .debs and
# no package caches, so no stack layer ships them.
RUN printf '%s\n' \
    'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };' \
    'APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };' \
    'Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";' >/etc/apt/apt.conf.d/docker-clean
# Slim as Debian's own -slim images are: dpkg installs no documentation, manual pages or
# translations of messages (the root each suite starts from has none either), so neither
# the upgrade below nor a stack's toolchain brings them back. They were a quarter of a run
# image (33 MB of message translations in bookworm's 124 MB root). The folders of manual
# pages stay: update-alternatives fails to link a page into a missing one (OpenJDK's
# postinst does; Debian bug 863199).
RUN printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
    'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' 'path-exclude /usr/share/groff/*' \
    'path-exclude /usr/share/lintian/*' 'path-exclude /usr/share/linda/*' 'path-exclude /usr/share/locale/*' \
    >/etc/dpkg/dpkg.cfg.d/docker-slim \
 && mkdir -p /usr/share/man/man1 /usr/share/man/man5 /usr/share/man/man7 /usr/share/man/man8
# Upgraded to the suite's packages of the day it is made: `hoistd stacks prepare NAME
# --refresh` makes it again, and `hoist rebase` moves apps onto it.
RUN apt-get update -q && apt-get upgrade -y -q >/dev/null \
 && apt-get install -y -q --no-install-recommends ca-certificates >/dev/null \
 && rm -rf /var/lib/apt/lists/*
COPY ca-certificates/ /usr/local/share/ca-certificates/hoist/
RUN update-ca-certificates >/dev/null 2>&1
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    CURL_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt \
    NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt \
    CARGO_HTTP_CAINFO=/etc/ssl/certs/ca-certificates.crt
RUN useradd --uid 1001 --user-group --no-create-home --home-dir /workspace hoist \
 && mkdir -p /app /deps /workspace /cache && chown hoist:hoist /app /deps /workspace /cache
