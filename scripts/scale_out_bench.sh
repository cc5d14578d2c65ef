#!/usr/bin/env bash
# Bounded throughput run of the Redis queue on loopback (docs/scale-out.md): a redis-server on a free port in a
# temporary folder, one `serve --queue` front, then 1, 2 and 3 `worker`s (and, for reference, `serve` without
# --queue) on the demo model; for each, JOBS
# txt2img requests sent at once (16 clients) and the jobs/s it took. Stops by itself (each round at most
# ROUND_TIMEOUT s) and leaves nothing running.
#   scripts/scale_out_bench.sh                        # JOBS=30 STEPS=4 SIZE=64 WORKER_THREADS=1
#   NB=build/apps/cli/nanobanana JOBS=60 scripts/scale_out_bench.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
nb=${NB:-$root/build/apps/cli/nanobanana}
jobs=${JOBS:-30} steps=${STEPS:-4} size=${SIZE:-64} threads=${WORKER_THREADS:-1} round_timeout=${ROUND_TIMEOUT:-300}
command -v redis-server >/dev/null || { echo "scale_out_bench: redis-server not installed (scripts/setup.sh)" >&2; exit 2; }
[ -x "$nb" ] || { echo "scale_out_bench: no nanobanana binary at $nb (build it, or set NB)" >&2; exit 2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
dir=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
rport=$(free_port)
redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" --logfile "$dir/redis.log" &
pids+=($!)
for _ in $(seq 100); do [ "$(redis-cli -p "$rport" ping 2>/dev/null)" = PONG ] && break; sleep 0.05; done
url=redis://127.0.0.1:$rport
"$nb" serve --port 0 --queue "$url" 2>"$dir/front.log" &
pids+=($!)
for _ in $(seq 300); do grep -q 'listening on' "$dir/front.log" && break; sleep 0.1; done
port=$(sed -n 's/.*listening on http:\/\/[^:]*:\([0-9]*\).*/\1/p' "$dir/front.log" | head -1)
[ -n "$port" ] || { cat "$dir/front.log" >&2; exit 1; }
body=$(printf '{"prompt": "a red circle on a blue background", "steps": %d, "width": %d, "height": %d, "seed": SEED}' \
         "$steps" "$size" "$size")
echo "scale_out_bench: $jobs jobs of txt2img ${size}x${size}, $steps steps, demo model; workers -t $threads" \
     "($(nproc) cores: $(lscpu | sed -n 's/^Model name: *//p'))"
# The same jobs on `serve` without --queue (in-process, one job at a time), for reference.
"$nb" serve --port 0 -t "$threads" 2>"$dir/plain.log" &
plain=$!
pids+=($plain)
for _ in $(seq 300); do grep -q 'listening on' "$dir/plain.log" && break; sleep 0.1; done
pport=$(sed -n 's/.*listening on http:\/\/[^:]*:\([0-9]*\).*/\1/p' "$dir/plain.log" | head -1)
round() {  # round LABEL PORT
  t0=$(date +%s.%N)
  ok=$(seq "$jobs" | timeout "$round_timeout" xargs -P 16 -I{} sh -c \
         "curl -s -o /dev/null -w '%{http_code}\n' --max-time 120 -H 'Content-Type: application/json' \
          -d '${body/SEED/\{\}}' http://127.0.0.1:$2/sdapi/v1/txt2img" | grep -c '^200$' || true)
  t1=$(date +%s.%N)
  python3 -c "print(f'{\"$1\":<22} jobs={$ok}/{$jobs}  time={$t1-$t0:.2f} s  throughput={$ok/($t1-$t0):.2f} jobs/s')"
}
curl -s -o /dev/null --max-time 120 -H 'Content-Type: application/json' -d "${body/SEED/1}" \
  "http://127.0.0.1:$pport/sdapi/v1/txt2img"
round "in-process (no queue)" "$pport"
kill "$plain"; wait "$plain" 2>/dev/null || true
for n in 1 2 3; do
  wpids=()
  for i in $(seq "$n"); do
    "$nb" worker -t "$threads" --queue "$url" --name "b$n-$i" 2>"$dir/w$n-$i.log" &
    wpids+=($!)
    pids+=($!)
  done
  for i in $(seq "$n"); do
    for _ in $(seq 300); do grep -q 'waiting for jobs' "$dir/w$n-$i.log" && break; sleep 0.1; done
  done
  # one warm-up job per worker (model load) before timing
  seq "$n" | xargs -P "$n" -I{} curl -s -o /dev/null --max-time 120 -H 'Content-Type: application/json' \
    -d "${body/SEED/1}" "http://127.0.0.1:$port/sdapi/v1/txt2img"
  round "queue, $n worker(s)" "$port"
  for p in "${wpids[@]}"; do kill "$p"; wait "$p" 2>/dev/null || true; done
done
