# Shared helpers of the environment scripts. Sourced, never run.
# Debian's own docker client comes first: /usr/local/bin/docker (newer, no buildx) cannot
# build with BuildKit against Debian's dockerd 20.10.
DOCKER=/usr/bin/docker
CACHE_DIR="${HOIST_CACHE_DIR:-$HOME/.cache/hoist-test}"
mkdir -p "$CACHE_DIR"

log() { printf '[env %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

_step_name=""; _step_t0=0
step_start() { _step_name="$1"; _step_t0=$(date +%s); log "$_step_name ..."; }
step_end() { log "$_step_name done in $(( $(date +%s) - _step_t0 )) s"; }

# need_packages PKG...: apt-get install the packages that are not installed yet.
need_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    if [[ $(id -u) != 0 ]]; then die "installing packages needs root: run as root or install ${missing[*]}"; fi
    # The package lists may be missing on a fresh machine; refresh them once.
    if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >"$CACHE_DIR/apt.log" 2>&1; then
      apt-get update -q >>"$CACHE_DIR/apt.log" 2>&1 || { cat "$CACHE_DIR/apt.log" >&2; die "apt-get update failed"; }
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$CACHE_DIR/apt.log" 2>&1 \
        || { tail -30 "$CACHE_DIR/apt.log" >&2; die "apt-get install ${missing[*]} failed"; }
    fi
  fi
}

docker_up() { "$DOCKER" version --format '{{.Server.Version}}' >/dev/null 2>&1; }

# clear_stale_pid_files: dockerd and its containerd killed without a clean stop leave their pid
# files behind. Once another process takes a pid, dockerd believes "containerd is still running",
# waits for a socket that never comes and gives up after 60 s. A pid file is removed unless the
# process it names is the daemon that wrote it.
clear_stale_pid_files() {
  local file comm pid
  for file in /var/run/docker/containerd/containerd.pid:containerd /var/run/docker.pid:dockerd; do
    comm=${file#*:}; file=${file%%:*}
    [ -f "$file" ] || continue
    pid=$(cat "$file" 2>/dev/null)
    if [ -z "$pid" ] || [ "$(cat "/proc/$pid/comm" 2>/dev/null)" != "$comm" ]; then
      log "removing $file: pid ${pid:-none} is not a running $comm"
      rm -f "$file"
    fi
  done
}

# start_dockerd: start Debian's dockerd unless one answers already; wait up to 60 s.
start_dockerd() {
  if docker_up; then log "dockerd already running"; return; fi
  clear_stale_pid_files
  log "starting dockerd (log: /var/log/dockerd.log)"
  setsid nohup /usr/sbin/dockerd >/var/log/dockerd.log 2>&1 < /dev/null &
  for _ in $(seq 1 120); do
    docker_up && return
    sleep 0.5
  done
  tail -30 /var/log/dockerd.log >&2
  die "dockerd did not answer within 60 s (log above)"
}

# ensure_base_image: debian:bookworm-slim from debootstrap, since nothing can be pulled.
# The root filesystem tarball is cached, so a machine whose images were wiped re-imports
# it in seconds. Slim as Debian's own image: no package lists, documentation, manual pages
# or message translations (33 of the 124 MB debootstrap leaves); os.Dockerfile keeps dpkg
# from bringing them back. Nor the .deb files debootstrap downloaded (31 MB): a stack's
# apt removes them at its first run, but only in a layer above, so every stack image and
# every app image still carried them (version 3). BASE_IMAGE_VERSION names what this
# function makes: an image or tarball of another version is made again (from the older
# tarball, without debootstrap).
BASE_IMAGE_VERSION=3
ensure_base_image() {
  local have=""
  if "$DOCKER" image inspect debian:bookworm-slim >/dev/null 2>&1; then
    have=$("$DOCKER" image inspect -f '{{index .Config.Labels "org.hoist.base-image"}}' debian:bookworm-slim)
    have=${have:-1}
  fi
  if [[ "$have" == "$BASE_IMAGE_VERSION" ]]; then log "present"; return; fi
  local tarball="$CACHE_DIR/debian-bookworm-minbase-v$BASE_IMAGE_VERSION.tar" older="" candidate
  for candidate in "$CACHE_DIR"/debian-bookworm-minbase*.tar; do
    if [[ -s "$candidate" && "$candidate" != "$tarball" ]]; then older="$candidate"; fi
  done
  if [[ ! -s "$tarball" ]]; then
    local rootfs
    rootfs="$(mktemp -d /tmp/hoist-rootfs.XXXXXX)"
    if [[ -n "$older" ]]; then
      log "slimming the root filesystem of an older base image ($older)"
      tar -C "$rootfs" -xf "$older"
    else
      log "debootstrap bookworm (minbase) into $rootfs"
      debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >"$CACHE_DIR/debootstrap.log" 2>&1 \
        || { tail -30 "$CACHE_DIR/debootstrap.log" >&2; die "debootstrap failed"; }
    fi
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/var/cache/apt/*.bin \
      "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/* "$rootfs"/var/cache/apt/archives/*.deb \
      "$rootfs"/var/cache/apt/archives/partial/* "$rootfs"/var/cache/debconf/*-old
    tar -C "$rootfs" -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs"
    [[ -z "$older" ]] || rm -f "$older"
  fi
  [[ -z "$have" ]] || log "replacing debian:bookworm-slim (version ${have:-none}) with version $BASE_IMAGE_VERSION"
  "$DOCKER" import --change "LABEL org.hoist.base-image=$BASE_IMAGE_VERSION" "$tarball" debian:bookworm-slim >/dev/null
}
