#!/usr/bin/env bash
# Runs libFuzzer on one reader of untrusted input, or on all of them (issue 22):
#   scripts/fuzz.sh TARGET SECONDS     # TARGET: a file name of fuzz/targets without .cpp, or "all"
#   scripts/fuzz.sh list
# Builds build-fuzz/ with clang (Debian's clang-16 + libclang-rt-16-dev, installed when missing), starts from the
# seeds in fuzz/corpus/TARGET and the inputs of past findings in fuzz/regressions/TARGET, and keeps what it
# learns in build-fuzz/corpus/TARGET (not in the repository). A crash, leak, timeout or UBSan report stops it
# with a non-zero exit and the input in build-fuzz/artifacts/TARGET/: fix the bug, then add the input to
# fuzz/regressions/TARGET/, where the normal test suite replays it (ctest -R FuzzReplay).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
say() { echo "fuzz: $*" >&2; }
targets=$(cd "$root/fuzz/targets" && ls ./*.cpp | sed 's|^\./||; s|\.cpp$||')
if [ "${1:-}" = "list" ]; then echo "$targets"; exit 0; fi
[ $# -eq 2 ] || { echo "usage: scripts/fuzz.sh TARGET|all SECONDS   (targets: $(echo $targets))" >&2; exit 2; }
target=$1 seconds=$2
[[ "$seconds" =~ ^[0-9]+$ ]] || { say "SECONDS must be a whole number, not '$seconds'"; exit 2; }
if [ "$target" = all ]; then selected=$targets; else
  grep -qx "$target" <<<"$targets" || { say "no fuzz target '$target' (targets: $(echo $targets))"; exit 2; }
  selected=$target
fi

packages=(clang-16 libclang-rt-16-dev)
missing=()
for p in "${packages[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
if ((${#missing[@]})); then
  say "installing ${missing[*]}"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  log=$(mktemp)
  if ! { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
         "${missing[@]}"; } >"$log" 2>&1; then cat "$log" >&2; say "package installation failed"; exit 1; fi
  rm -f "$log"
fi

build="$root/build-fuzz"
if [ ! -f "$build/CMakeCache.txt" ] || [ ! -f "$build/Makefile" ]; then
  say "configuring $build (clang-16)"
  rm -f "$build/CMakeCache.txt"
  CXX=clang++-16 cmake -S "$root" -B "$build" -DNB_FUZZ=ON -DCMAKE_BUILD_TYPE=Release >"$build.configure.log" 2>&1 ||
    { cat "$build.configure.log" >&2; rm -f "$build/CMakeCache.txt"; say "configure failed"; exit 1; }
  rm -f "$build.configure.log"
else
  cmake "$build" >/dev/null  # a target added since the last configure (the glob of fuzz/targets runs again)
fi
build_targets=()
for t in $selected; do build_targets+=(--target "fuzz_$t"); done
say "building the fuzz targets: $(echo $selected)"
cmake --build "$build" -j"$(nproc)" "${build_targets[@]}" >"$build/build.log" 2>&1 ||
  { tail -n 40 "$build/build.log" >&2; say "build failed (log: $build/build.log)"; exit 1; }

status=0
for t in $selected; do
  corpus="$build/corpus/$t" artifacts="$build/artifacts/$t"
  mkdir -p "$corpus" "$artifacts"
  seeds=("$root/fuzz/corpus/$t")
  [ -d "$root/fuzz/regressions/$t" ] && seeds+=("$root/fuzz/regressions/$t")
  dict=()
  [ -f "$root/fuzz/dict/$t.dict" ] && dict=(-dict="$root/fuzz/dict/$t.dict")
  say "$t: ${seconds} s"
  log="$artifacts/last-run.log"
  # Inputs up to 64 KiB; 2 GiB of memory and 10 s per input count as findings (a stranger's file must not
  # make the engine allocate without bound or spin).
  if ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1 \
     "$build/fuzz/fuzz_$t" "$corpus" "${seeds[@]}" "${dict[@]}" -max_total_time="$seconds" -max_len=65536 \
       -rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=10 -artifact_prefix="$artifacts/" -print_final_stats=1 \
       >"$log" 2>&1; then
    say "$t: $(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}') runs," \
        "$(grep -oE 'cov: [0-9]+' "$log" | tail -1) edges, corpus $(ls "$corpus" | wc -l) inputs, no findings"
  else
    status=1
    grep -E 'ERROR|runtime error|Test unit written|SUMMARY' "$log" | head -n 8 >&2 || true
    say "$t: FINDING (full log: $log); fix it, then add the input to fuzz/regressions/$t/"
  fi
done
exit $status
