# The shared pieces of the offline image builds (deploy/runners/build-offline.sh for the runner
# images, deploy/build-images.sh for the server, worker and stand-in service images): one
# debootstrap of a minimal Debian, cached in a work dir with the downloaded .deb files, chroot and
# mount helpers, and the clean-up that undoes every mount and temporary dir on exit. Sourced, never
# run. Env: CODECRAFTER_RUNNER_WORK (default /var/cache/codecrafter-runners), DEBOOTSTRAP_MIRROR
# (default http://deb.debian.org/debian), DEBIAN_SECURITY_MIRROR (default
# http://deb.debian.org/debian-security; empty: no security updates).

WORK="${CODECRAFTER_RUNNER_WORK:-/var/cache/codecrafter-runners}"
MIRROR="${DEBOOTSTRAP_MIRROR:-http://deb.debian.org/debian}"
# Security updates matter in every image we ship; empty leaves them out (a mirror without them).
SECURITY_MIRROR="${DEBIAN_SECURITY_MIRROR-http://deb.debian.org/debian-security}"
SUITE=bookworm
CHROOT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

offline_require_root_and_tools() { # offline_require_root_and_tools NAME
  [ "$(id -u)" -eq 0 ] || { echo "$1: run as root (debootstrap, chroot, mount)" >&2; exit 2; }
  local tool
  for tool in debootstrap docker chroot flock mount; do
    command -v "$tool" >/dev/null 2>&1 || { echo "$1: $tool is required (apt-get install docker.io debootstrap)" >&2; exit 2; }
  done
}

# One build at a time per work dir: the base and the .deb cache are shared.
offline_lock() {
  mkdir -p "$WORK/debs"
  exec 9>"$WORK/lock"
  if ! flock -n 9; then
    echo "offline build: another build holds $WORK/lock; waiting"
    flock 9
  fi
}

# Everything mounted or made here is undone on any exit.
MOUNTS=()
TMPDIRS=()
cleanup() {
  local i
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
    umount "${MOUNTS[i]}" 2>/dev/null || umount -l "${MOUNTS[i]}" 2>/dev/null || true
  done
  MOUNTS=()
  for i in "${TMPDIRS[@]}"; do
    rm -rf --one-file-system "$i"
  done
  TMPDIRS=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mount_in() { # mount_in DIR ARGS... : mount, remembering DIR for cleanup
  local dir=$1
  shift
  mount "$@" "$dir"
  MOUNTS+=("$dir")
}

unmount_all() {
  local i
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
    umount "${MOUNTS[i]}"
  done
  MOUNTS=()
}

in_chroot() { # in_chroot DIR CMD... : run with a clean environment
  local dir=$1
  shift
  chroot "$dir" /usr/bin/env -i PATH="$CHROOT_PATH" LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
}

# The shared base: debootstrap once, configured so no service starts, no recommends are pulled and
# dpkg leaves documentation out (as debian:bookworm-slim does).
ensure_base() {
  local base="$WORK/base" tmp="$WORK/base.tmp" start=$SECONDS
  # One script may ask for the base several times (build-images.sh: the base image, then the
  # stand-ins); the package lists are refreshed once.
  [ -z "${OFFLINE_BASE_READY:-}" ] || return 0
  if [ ! -e "$base/.codecrafter-base" ]; then
    echo "== base: debootstrap --variant=minbase $SUITE ($MIRROR)"
    rm -rf --one-file-system "$tmp" "$base"
    TMPDIRS+=("$tmp")
    debootstrap --variant=minbase --cache-dir="$WORK/debs" "$SUITE" "$tmp" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
      { tail -n 30 "$WORK/debootstrap.log" >&2; return 1; }
    printf '#!/bin/sh\nexit 101\n' >"$tmp/usr/sbin/policy-rc.d"
    chmod 755 "$tmp/usr/sbin/policy-rc.d"
    printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$tmp/etc/apt/apt.conf.d/90codecrafter"
    printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
      'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' 'path-exclude /usr/share/locale/*' \
      'path-include /usr/share/locale/locale.alias' >"$tmp/etc/dpkg/dpkg.cfg.d/90codecrafter-nodoc"
    # openjdk's postinst registers man pages as alternatives and fails without this directory.
    mkdir -p "$tmp/usr/share/man/man1"
    # debootstrap leaves its packages here too; they are in $WORK/debs already.
    rm -f "$tmp"/var/cache/apt/archives/*.deb
    touch "$tmp/.codecrafter-base"
    mv "$tmp" "$base"
    TMPDIRS=()
    echo "   base built in $((SECONDS - start)) s"
  fi
  # Fresh package lists once per run, so a base cached long ago still finds current versions.
  {
    echo "deb $MIRROR $SUITE main"
    echo "deb $MIRROR $SUITE-updates main"
    [ -z "$SECURITY_MIRROR" ] || echo "deb $SECURITY_MIRROR $SUITE-security main"
  } >"$base/etc/apt/sources.list"
  cp /etc/resolv.conf "$base/etc/resolv.conf"
  in_chroot "$base" apt-get update -qq
  OFFLINE_BASE_READY=1
}

# A copy of the base in a fresh temporary dir under $WORK (removed on exit), named in $ROOTFS: not
# printed, since a command substitution's subshell would lose the clean-up entry.
offline_rootfs() { # offline_rootfs NAME
  ROOTFS=$(mktemp -d "$WORK/build-$1.XXXXXX")
  TMPDIRS+=("$ROOTFS" "$ROOTFS.log")
  cp -a "$WORK/base/." "$ROOTFS/"
  rm -f "$ROOTFS/.codecrafter-base"
}

# apt-get install PACKAGES... into the rootfs DIR, with the shared .deb cache; the log on failure.
offline_install() { # offline_install DIR PACKAGE...
  local dir=$1
  shift
  mount_in "$dir/proc" -t proc proc
  # The .deb cache outlives the build: a rebuild, or another image with the same packages,
  # downloads nothing.
  mount_in "$dir/var/cache/apt/archives" --bind "$WORK/debs"
  in_chroot "$dir" apt-get install -y -q --no-install-recommends "$@" >"$dir.log" 2>&1 ||
    { tail -n 40 "$dir.log" >&2; return 1; }
  unmount_all
  rm -f "$dir.log"
}

# What an image does not need: package lists and caches, docs, log files, temporary files, and the
# build host's resolv.conf.
offline_slim() { # offline_slim DIR
  local dir=$1
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/var/cache/apt/archives/*.deb "$dir"/var/cache/debconf/*-old \
    "$dir"/usr/share/doc "$dir"/usr/share/man "$dir"/usr/share/info "$dir"/usr/share/locale \
    "$dir"/tmp/* "$dir"/var/tmp/* "$dir"/root/.[!.]* 2>/dev/null || true
  # Log files go, their directories stay: services such as RabbitMQ expect theirs to exist.
  find "$dir/var/log" -type f -delete
  : >"$dir/etc/resolv.conf"
}
