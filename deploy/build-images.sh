#!/usr/bin/env bash
# Builds the server and worker images of deploy/Dockerfile with no container registry:
#
#   1. the binaries, built here with cargo (--locked) and stripped, as an image holding /out;
#   2. a Debian base: the shared debootstrap of deploy/offline-base.sh plus ca-certificates,
#      imported with `docker import`;
#   3. `docker build -f deploy/Dockerfile --target server|worker` on that base with those binaries
#      (RUNTIME_IMAGE and BINARIES): the Dockerfile's own runtime stages, so the user, paths, health
#      check and entrypoint are the same as an image built with a registry.
#
#   deploy/build-images.sh [--profile release|dev | --binaries DIR] [--tag TAG] [--stand-ins] [--force]
#
# --binaries DIR takes codecrafter and codecrafter-worker already built in DIR (the tests use their
# debug build); --stand-ins also builds codecrafter/stand-in:bookworm, the image the offline compose
# smoke test (deploy/compose/smoke.sh) runs in place of redis, rabbitmq, nginx, prometheus and
# mongo, from Debian's packages and SecantusDB (PyPI). --force rebuilds the base images too.
# Images: codecrafter/server:TAG and codecrafter/worker:TAG (TAG defaults to "local").
# Runs as root (debootstrap, chroot). Env: as deploy/offline-base.sh.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=deploy/offline-base.sh
source "$HERE/offline-base.sh"

BASE_IMAGE=codecrafter/base:bookworm
STAND_IN_IMAGE=codecrafter/stand-in:bookworm
# What the stand-in image runs, each as the compose service of the same role (compose/offline.yml).
STAND_IN_PACKAGES="redis-server rabbitmq-server nginx-light prometheus python3 python3-venv ca-certificates"
SECANTUS_VERSION="${SECANTUS_VERSION:-}"

usage() {
  echo "usage: $0 [--profile release|dev | --binaries DIR] [--tag TAG] [--stand-ins] [--force]" >&2
  exit 2
}

profile=release binaries="" tag="${CODECRAFTER_IMAGE_TAG:-local}" stand_ins="" force=""
while [ $# -gt 0 ]; do
  case $1 in
    --profile) profile=${2:?}; shift ;;
    --binaries) binaries=${2:?}; shift ;;
    --tag) tag=${2:?}; shift ;;
    --stand-ins) stand_ins=1 ;;
    --force) force=1 ;;
    *) usage ;;
  esac
  shift
done

offline_require_root_and_tools build-images

# BuildKit builds only the stages a target needs, so the Rust stages (which need a registry) are
# skipped. The Docker 23+ CLI does BuildKit only through the buildx plugin; Debian's 20.10 CLI
# (/usr/bin/docker from docker.io) talks to the engine's built-in BuildKit itself.
buildkit() {
  local cli
  if docker buildx version >/dev/null 2>&1; then
    docker buildx build --load "$@"
    return
  fi
  for cli in docker /usr/bin/docker; do
    command -v "$cli" >/dev/null 2>&1 || continue
    local major
    major=$("$cli" version --format '{{.Client.Version}}' 2>/dev/null | cut -d. -f1)
    if [ -n "$major" ] && [ "$major" -lt 23 ]; then
      DOCKER_BUILDKIT=1 "$cli" build "$@"
      return
    fi
  done
  echo "build-images: BuildKit is needed: install docker-buildx, or use Debian's docker.io CLI (/usr/bin/docker)" >&2
  return 1
}

have_image() { [ -z "$force" ] && docker image inspect "$1" >/dev/null 2>&1; }

import_rootfs() { # import_rootfs DIR IMAGE CHANGE...
  local dir=$1 image=$2
  shift 2
  local changes=(--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin')
  local change
  for change in "$@"; do changes+=(--change "$change"); done
  tar --numeric-owner -C "$dir" -c . | docker import "${changes[@]}" --message "deploy/build-images.sh" - "$image" >/dev/null
  rm -rf --one-file-system "$dir"
  TMPDIRS=()
  echo "   built $image ($(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%d MB", $1/1e6}'))"
}

build_base() {
  have_image "$BASE_IMAGE" && { echo "== $BASE_IMAGE exists; kept (--force rebuilds)"; return; }
  echo "== $BASE_IMAGE: Debian $SUITE (debootstrap) + ca-certificates"
  ensure_base
  offline_rootfs base
  offline_install "$ROOTFS" ca-certificates
  offline_slim "$ROOTFS"
  import_rootfs "$ROOTFS" "$BASE_IMAGE" 'CMD ["/bin/bash"]'
}

build_stand_ins() {
  have_image "$STAND_IN_IMAGE" && { echo "== $STAND_IN_IMAGE exists; kept (--force rebuilds)"; return; }
  echo "== $STAND_IN_IMAGE: $STAND_IN_PACKAGES + secantusdb (pip)"
  ensure_base
  offline_rootfs stand-in
  # shellcheck disable=SC2086
  offline_install "$ROOTFS" $STAND_IN_PACKAGES
  # The MongoDB stand-in: no MongoDB server installs from Debian or PyPI; SecantusDB speaks its
  # wire protocol (the tests' MongoDB too).
  # wire protocol (the tests' MongoDB too). Its wheels are downloaded by this host's pip (with the
  # host's index and certificate settings), then installed in the image with no network.
  local wheels="$WORK/wheels"
  mkdir -p "$wheels" "$ROOTFS/tmp/wheels"
  python3 -m pip download -q --disable-pip-version-check -d "$wheels" "secantusdb${SECANTUS_VERSION:+==$SECANTUS_VERSION}"
  mount_in "$ROOTFS/tmp/wheels" --bind "$wheels"
  in_chroot "$ROOTFS" python3 -m venv /opt/secantus >/dev/null
  in_chroot "$ROOTFS" /opt/secantus/bin/pip install -q --disable-pip-version-check --no-cache-dir \
    --no-index --find-links /tmp/wheels "secantusdb${SECANTUS_VERSION:+==$SECANTUS_VERSION}"
  unmount_all
  offline_slim "$ROOTFS"
  import_rootfs "$ROOTFS" "$STAND_IN_IMAGE" 'CMD ["/bin/bash"]'
}

build_binaries() { # prints nothing; leaves the binaries image codecrafter/binaries:$tag
  local dir=$binaries
  if [ -z "$dir" ]; then
    echo "== cargo build --locked --profile $profile (server, worker)"
    (cd "$ROOT" && cargo build --locked --profile "$profile" -p server -p workers \
      --bin codecrafter --bin codecrafter-worker)
    dir="$ROOT/target/$([ "$profile" = dev ] && echo debug || echo "$profile")"
  fi
  local out
  out=$(mktemp -d "$WORK/binaries.XXXXXX")
  TMPDIRS+=("$out")
  mkdir "$out/out"
  install -m 755 "$dir/codecrafter" "$dir/codecrafter-worker" "$out/out/"
  strip --strip-all "$out/out/codecrafter" "$out/out/codecrafter-worker"
  echo "== codecrafter/binaries:$tag from $dir ($(du -sh "$out/out" | cut -f1) stripped)"
  tar --numeric-owner -C "$out" -c out | docker import --message "binaries from $dir" - "codecrafter/binaries:$tag" >/dev/null
  rm -rf "$out"
  TMPDIRS=()
}

build_targets() {
  local target
  for target in server worker; do
    echo "== codecrafter/$target:$tag (deploy/Dockerfile --target $target)"
    buildkit --quiet -f "$HERE/Dockerfile" --target "$target" \
      --build-arg "RUNTIME_IMAGE=$BASE_IMAGE" --build-arg "BINARIES=codecrafter/binaries:$tag" \
      --label "org.opencontainers.image.revision=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
      -t "codecrafter/$target:$tag" "$ROOT" >/dev/null
    echo "   built codecrafter/$target:$tag ($(docker image inspect -f '{{.Size}}' "codecrafter/$target:$tag" | awk '{printf "%d MB", $1/1e6}'))"
  done
}

start=$SECONDS
offline_lock
build_base
[ -z "$stand_ins" ] || build_stand_ins
build_binaries
build_targets
echo "== images built in $((SECONDS - start)) s"
