# A Debian suite other than bookworm (trixie, ...), made without pulling anything and
# without privileges: debootstrap's first stage downloads and unpacks the suite in a
# bookworm container, its second stage configures it inside the new root, and a last
# stage copies that root into one clean layer. hoistd builds it with SUITE set.
FROM debian:bookworm-slim AS download
ARG SUITE
RUN apt-get update -q && apt-get install -y -q --no-install-recommends debootstrap >/dev/null \
 && debootstrap --variant=minbase --foreign "$SUITE" /rootfs http://deb.debian.org/debian

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
