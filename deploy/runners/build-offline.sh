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
# Build order: python first (the first backend tests use it), then the other test defaults.
RUNNERS=(python node gcc java go rust ruby php mono)
# The shared debootstrap base, its work dir and lock, chroot and mount helpers (deploy/build-images.sh
# uses the same base for the server and worker images).
# shellcheck source=deploy/offline-base.sh
source "$HERE/../offline-base.sh"

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

offline_require_root_and_tools build-offline
offline_lock

build_one() {
  local runner=$1 image="$PREFIX$1:$TAG" dir start=$SECONDS pkgs
  pkgs=$(packages "$runner")
  [ -n "$pkgs" ] || { echo "build-offline: no PACKAGES line in $HERE/$runner/Dockerfile" >&2; return 1; }
  echo "== $image: $pkgs"
  offline_rootfs "$runner"
  dir=$ROOTFS
  # shellcheck disable=SC2086
  offline_install "$dir" $pkgs
  install -o root -g root -m 755 "$HERE/codecrafter-run" "$dir/usr/local/bin/codecrafter-run"
  find "$dir" -xdev -perm /6000 -type f -exec chmod a-s {} +
  offline_slim "$dir"
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
