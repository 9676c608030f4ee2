# Debian testing and unstable (forky, sid), made as suite.Dockerfile makes a stable
# suite, with the two differences these suites need here: bookworm's debootstrap has no
# script named after a suite newer than it knows, so it is given sid's (testing and
# unstable share it), and the mirror serves their Release files past Valid-Until, so apt
# in the new root is told not to check that date (debootstrap itself does not).
FROM debian:bookworm-slim AS download
ARG SUITE
RUN apt-get update -q && apt-get install -y -q --no-install-recommends debootstrap >/dev/null \
 && debootstrap --variant=minbase --foreign "$SUITE" /rootfs http://deb.debian.org/debian \
      /usr/share/debootstrap/scripts/sid \
 && printf 'Acquire::Check-Valid-Until "false";\n' >/rootfs/etc/apt/apt.conf.d/10hoist-valid-until

FROM scratch AS configure
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
COPY --from=download /rootfs/ /
RUN /debootstrap/debootstrap --second-stage \
 && rm -rf /debootstrap /var/cache/apt/archives/*.deb /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/* \
      /usr/share/info/* /usr/share/locale/*

FROM scratch
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
COPY --from=configure / /
CMD ["bash"]
