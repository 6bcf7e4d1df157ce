#!/usr/bin/env bash
# Builds the runner images with no container registry: Debian's packages only. One debootstrap of
# a minimal bookworm (cached in the work dir), then per runner a copy of it, `apt-get install` of
# the runner's packages in a chroot, the launcher, setuid bits stripped, docs and apt lists
# removed, and `docker import`. The package list of each runner is the PACKAGES line of its
# Dockerfile, so both ways of building install the same thing.
#
#   deploy/runners/build-offline.sh [--force] [RUNNER...]   (default: every runner)
#   deploy/runners/build-offline.sh --list
#
# Env: CODECRAFTER_RUNNER_PREFIX (default codecrafter-runner-; images are PREFIX<runner>:1),
# CODECRAFTER_RUNNER_WORK (default /var/cache/codecrafter-runners: the base and the .deb cache),
# DEBOOTSTRAP_MIRROR (default http://deb.debian.org/debian), DEBIAN_SECURITY_MIRROR (default
# http://deb.debian.org/debian-security; empty: no security updates). Runs as root. An image that
# exists is skipped unless --force. Two runs at once take turns on a lock in the work dir.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PREFIX="${CODECRAFTER_RUNNER_PREFIX:-codecrafter-runner-}"
TAG=1
WORK="${CODECRAFTER_RUNNER_WORK:-/var/cache/codecrafter-runners}"
MIRROR="${DEBOOTSTRAP_MIRROR:-http://deb.debian.org/debian}"
# Security updates matter in a sandbox image; empty leaves them out (a mirror without them).
SECURITY_MIRROR="${DEBIAN_SECURITY_MIRROR-http://deb.debian.org/debian-security}"
SUITE=bookworm
# Build order: python first (the first backend tests use it), then the other test defaults.
RUNNERS=(python node gcc java go rust ruby php mono)
CHROOT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

usage() {
  echo "usage: $0 [--force] [RUNNER...] | --list   (runners: ${RUNNERS[*]})" >&2
  exit 2
}

packages() {
  sed -n 's/^ARG PACKAGES="\(.*\)"$/\1/p' "$HERE/$1/Dockerfile"
}

force=""
wanted=()
for arg in "$@"; do
  case $arg in
    --list) printf '%s\n' "${RUNNERS[@]}"; exit 0 ;;
    --force) force=1 ;;
    -h | --help) usage ;;
    -*) usage ;;
    *)
      [ -f "$HERE/$arg/Dockerfile" ] || { echo "build-offline: unknown runner: $arg" >&2; usage; }
      wanted+=("$arg")
      ;;
  esac
done
[ ${#wanted[@]} -gt 0 ] || wanted=("${RUNNERS[@]}")

[ "$(id -u)" -eq 0 ] || { echo "build-offline: run as root (debootstrap, chroot, mount)" >&2; exit 2; }
for tool in debootstrap docker chroot flock mount; do
  command -v "$tool" >/dev/null 2>&1 || { echo "build-offline: $tool is required (apt-get install docker.io debootstrap)" >&2; exit 2; }
done

mkdir -p "$WORK/debs"
exec 9>"$WORK/lock"
if ! flock -n 9; then
  echo "build-offline: another build holds $WORK/lock; waiting"
  flock 9
fi

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
}

build_one() {
  local runner=$1 image="$PREFIX$1:$TAG" dir start=$SECONDS pkgs
  pkgs=$(packages "$runner")
  [ -n "$pkgs" ] || { echo "build-offline: no PACKAGES line in $HERE/$runner/Dockerfile" >&2; return 1; }
  echo "== $image: $pkgs"
  dir=$(mktemp -d "$WORK/build-$runner.XXXXXX")
  TMPDIRS+=("$dir" "$dir.log")
  cp -a "$WORK/base/." "$dir/"
  rm -f "$dir/.codecrafter-base"
  mount_in "$dir/proc" -t proc proc
  # The .deb cache outlives the build: a rebuild or a second runner with the same packages
  # downloads nothing.
  mount_in "$dir/var/cache/apt/archives" --bind "$WORK/debs"
  # shellcheck disable=SC2086
  in_chroot "$dir" apt-get install -y -q --no-install-recommends $pkgs >"$dir.log" 2>&1 ||
    { tail -n 40 "$dir.log" >&2; return 1; }
  unmount_all
  rm -f "$dir.log"
  install -o root -g root -m 755 "$HERE/codecrafter-run" "$dir/usr/local/bin/codecrafter-run"
  find "$dir" -xdev -perm /6000 -type f -exec chmod a-s {} +
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/var/cache/apt/archives/*.deb "$dir"/var/cache/debconf/*-old \
    "$dir"/usr/share/doc "$dir"/usr/share/man "$dir"/usr/share/info "$dir"/usr/share/locale \
    "$dir"/var/log/* "$dir"/tmp/* "$dir"/var/tmp/* "$dir"/root/.[!.]* 2>/dev/null || true
  : >"$dir/etc/resolv.conf"
  # 1777 like /tmp: Docker gives a tmpfs mounted here the mode of the directory under it.
  install -d -m 1777 "$dir/box"
  tar --numeric-owner -C "$dir" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'WORKDIR /box' --change 'USER 65534:65534' \
    --change 'CMD ["/usr/local/bin/codecrafter-run"]' \
    --change "LABEL org.codecrafter.runner=$runner org.codecrafter.packages=\"$pkgs\"" \
    --message "build-offline.sh: $pkgs" - "$image" >/dev/null
  rm -rf --one-file-system "$dir"
  TMPDIRS=()
  echo "   built $image in $((SECONDS - start)) s ($(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%d MB", $1/1e6}'))"
}

todo=()
for runner in "${wanted[@]}"; do
  if [ -z "$force" ] && docker image inspect "$PREFIX$runner:$TAG" >/dev/null 2>&1; then
    echo "== $PREFIX$runner:$TAG exists; skipped (--force rebuilds)"
  else
    todo+=("$runner")
  fi
done
[ ${#todo[@]} -gt 0 ] || exit 0

total=$SECONDS
ensure_base
for runner in "${todo[@]}"; do
  build_one "$runner"
done
echo "== built ${todo[*]} in $((SECONDS - total)) s"
