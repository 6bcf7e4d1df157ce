#!/usr/bin/env bash
# Runs hello world through the launcher of each installed runner image, under exactly the limits
# the server uses (deploy/runners/README.md), and checks what it prints. For each language: the
# version probe, the wall time of the cold `docker run` (create, compile, run, remove) and the
# container's peak memory. Exits non-zero if any language fails.
#
#   deploy/runners/check.sh [RUNNER...]   (default: every runner whose image exists)
#
# Env: CODECRAFTER_RUNNER_PREFIX (default codecrafter-runner-), CHECK_TIMEOUT (seconds, default 10).
set -euo pipefail

PREFIX="${CODECRAFTER_RUNNER_PREFIX:-codecrafter-runner-}"
TIMEOUT="${CHECK_TIMEOUT:-10}"
RUNNERS=(python node gcc java go rust ruby php mono)

# The limits of a run, as the Rust backend sets them.
# shellcheck disable=SC2054 # the commas are tmpfs options
LIMITS=(
  --network none --read-only --user 65534:65534 --cap-drop ALL
  --security-opt no-new-privileges --pids-limit 64
  --memory 128m --memory-swap 128m --cpus 0.5
  --tmpfs /tmp:rw,noexec,nosuid,nodev,size=16m,mode=1777
  --tmpfs /box:rw,exec,nosuid,nodev,size=16m,mode=1777
  --workdir /box
  --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  --env HOME=/box --env LANG=C.UTF-8 --env PYTHONUNBUFFERED=1 --env PYTHONDONTWRITEBYTECODE=1
)

languages() {
  case $1 in
    python) echo python ;;
    node) echo javascript ;;
    gcc) echo c cpp ;;
    java) echo java ;;
    go) echo go ;;
    rust) echo rust ;;
    ruby) echo ruby ;;
    php) echo php ;;
    mono) echo csharp ;;
  esac
}

# Each program reads a name from its stdin (the bytes after the program) and greets it.
program() {
  case $1 in
    python) cat <<'EOF' ;;
name = input()
print(f"Hello, {name}!")
EOF
    javascript) cat <<'EOF' ;;
const name = require("fs").readFileSync(0, "utf8").split("\n")[0];
console.log(`Hello, ${name}!`);
EOF
    c) cat <<'EOF' ;;
#include <stdio.h>
#include <string.h>
int main(void) {
  char name[64];
  if (!fgets(name, sizeof name, stdin)) return 1;
  name[strcspn(name, "\n")] = 0;
  printf("Hello, %s!\n", name);
  return 0;
}
EOF
    cpp) cat <<'EOF' ;;
#include <iostream>
#include <string>
int main() {
  std::string name;
  std::getline(std::cin, name);
  std::cout << "Hello, " << name << "!" << std::endl;
}
EOF
    java) cat <<'EOF' ;;
import java.io.BufferedReader;
import java.io.InputStreamReader;
public class Main {
  public static void main(String[] args) throws Exception {
    String name = new BufferedReader(new InputStreamReader(System.in)).readLine();
    System.out.println("Hello, " + name + "!");
  }
}
EOF
    go) cat <<'EOF' ;;
package main

import (
	"bufio"
	"fmt"
	"os"
)

func main() {
	s := bufio.NewScanner(os.Stdin)
	s.Scan()
	fmt.Printf("Hello, %s!\n", s.Text())
}
EOF
    rust) cat <<'EOF' ;;
fn main() {
    let mut name = String::new();
    std::io::stdin().read_line(&mut name).unwrap();
    println!("Hello, {}!", name.trim_end());
}
EOF
    ruby) cat <<'EOF' ;;
name = gets.chomp
puts "Hello, #{name}!"
EOF
    php) cat <<'EOF' ;;
<?php
$name = trim(fgets(STDIN));
echo "Hello, $name!\n";
EOF
    csharp) cat <<'EOF' ;;
using System;
class Program {
  static void Main() {
    string name = Console.ReadLine();
    Console.WriteLine("Hello, " + name + "!");
  }
}
EOF
  esac
}

ms() { date +%s%3N; }

# run_limited NAME IMAGE ARGS... : docker run -i under the limits, killed after $TIMEOUT s. The
# launcher runs under a shell that reports the container's peak memory on stderr after it.
run_limited() {
  local name=$1 image=$2 rc=0
  shift 2
  # shellcheck disable=SC2016 # expanded by the container's shell
  timeout --kill-after=5 "$TIMEOUT" docker run -i --rm --name "$name" "${LIMITS[@]}" "$image" \
    /bin/sh -c '/usr/local/bin/codecrafter-run "$@"; rc=$?
      peak=$(cat /sys/fs/cgroup/memory/memory.max_usage_in_bytes /sys/fs/cgroup/memory.peak 2>/dev/null | head -n 1)
      echo "codecrafter-check-peak ${peak:-0}" >&2; exit $rc' sh "$@" || rc=$?
  if [ $rc -eq 124 ] || [ $rc -eq 137 ] && docker container inspect "$name" >/dev/null 2>&1; then
    docker rm -f "$name" >/dev/null 2>&1 || true
  fi
  return $rc
}

wanted=("$@")
if [ ${#wanted[@]} -eq 0 ]; then
  for runner in "${RUNNERS[@]}"; do
    docker image inspect "$PREFIX$runner:1" >/dev/null 2>&1 && wanted+=("$runner")
  done
  [ ${#wanted[@]} -gt 0 ] || { echo "check: no runner image installed (deploy/runners/build-offline.sh builds them)" >&2; exit 1; }
fi

failures=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '%-8s %-11s %-10s %8s %8s  %s\n' runner language version "run ms" "peak MB" result
for runner in "${wanted[@]}"; do
  image="$PREFIX$runner:1"
  if ! docker image inspect "$image" >/dev/null 2>&1; then
    echo "check: $image is not installed (deploy/runners/build-offline.sh $runner)" >&2
    failures=$((failures + 1))
    continue
  fi
  for lang in $(languages "$runner"); do
    name="codecrafter-check-$$-$lang"
    version=$(run_limited "$name" "$image" --version "$lang" </dev/null 2>"$tmp/err" | head -n 1) || version="?"
    program "$lang" >"$tmp/src"
    start=$(ms)
    rc=0
    { printf '%s\n' "$(wc -c <"$tmp/src")"; cat "$tmp/src"; echo CodeCrafter; } |
      run_limited "$name" "$image" "$lang" >"$tmp/out" 2>"$tmp/err" || rc=$?
    elapsed=$(($(ms) - start))
    peak=$(sed -n 's/^codecrafter-check-peak //p' "$tmp/err" | tail -n 1)
    peak_mb=$(awk -v b="${peak:-0}" 'BEGIN { printf "%.0f", b / 1048576 }')
    if [ $rc -eq 0 ] && [ "$(cat "$tmp/out")" = "Hello, CodeCrafter!" ]; then
      result=ok
    else
      result="FAIL (exit $rc)"
      [ $rc -ne 124 ] || result="FAIL (timeout ${TIMEOUT} s)"
      failures=$((failures + 1))
    fi
    printf '%-8s %-11s %-10s %8s %8s  %s\n' "$runner" "$lang" "$version" "$elapsed" "$peak_mb" "$result"
    if [ "$result" != ok ]; then
      sed 's/^/    out: /' "$tmp/out" >&2
      grep -v '^codecrafter-check-peak ' "$tmp/err" | head -n 20 | sed 's/^/    err: /' >&2
    fi
  done
done
[ $failures -eq 0 ] || { echo "check: $failures failure(s)" >&2; exit 1; }
echo "check: all ok"
