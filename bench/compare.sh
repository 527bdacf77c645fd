#!/usr/bin/env bash
# Side-by-side benchmark: tinysse and its peers (nginx+nchan, axum, Go net/http, Node http), each
# on its own port on 127.0.0.1, each run against the load generator (examples/loadgen.rs) with
# N=1000 and N=10000 subscribers, in each publisher mode, REPEATS times. A fresh server for every
# run; the servers alternate (for each repeat, N and mode, every server runs once before the next
# mode), so a slow spell of the shared machine does not land on one server only.
# Prints a markdown table at the end (also written to $OUT/table.md): per server, the best and the
# median over the repeats.
#   bash bench/setup.sh && bash bench/compare.sh
# Environment (all optional):
#   REPEATS=3             runs of every (server, N, mode)
#   MODES="pipelined wait1 wait4"   publisher modes: pipelined (one connection, --window requests
#                         in flight), waitK (K connections at once, each waiting for its answer
#                         before the next POST: --publish-mode wait --publishers K)
#   E1K=2000 E10K=500     events published in the pipelined 1k / 10k runs
#   W1K=500 W10K=100      events published in the waiting (waitK) 1k / 10k runs, in all
#   NS="1000 10000"       subscriber counts to run (the table knows 1000 and 10000)
#   PEERS="tinysse nchan axum go node"
#   SIZE=64               event size
#   IDLE_SECS=5           idle window measured by the loadgen in the pipelined runs (RSS, wakeups)
#   WAIT_IDLE_SECS=0      idle window in the waiting runs (the table takes idle figures from the
#                         pipelined runs)
#   PHASE_TIMEOUT=180     the loadgen's --timeout, per phase (its own default, 60 s, is too short
#                         for the slower peers to deliver 10k x 500 events on 2 cores)
#   RUN_TIMEOUT=420       seconds one loadgen run may take before it is killed
#   TINYSSE_ARGS          extra tinysse flags, e.g. "--history 4096"
#   BASE_PORT=18100       run k (counted from 1) listens on BASE_PORT+k
#   OUT=/tmp/tinysse-bench/<date>   logs, per-run JSON, table.md
#   CARGO_TARGET_DIR      the main crate's target dir (default ./target)
#   AXUM_TARGET           the axum peer's target dir (default /tmp/bench-axum-target)
#   LOADGEN               a prebuilt load generator to use instead of building examples/loadgen
#   LOADGEN_ARGS          extra loadgen flags for every run, e.g. "--timeout 120" (not --window with
#                         waiting modes, which have exactly one request in flight)
# A full run at the defaults (3 repeats x 5 servers x 2 N x 3 modes = 90 runs) took about
# 23 minutes on the 2-core machine of BENCHMARKS.md; REPEATS=1 about a third of that.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
cd "$root"

REPEATS=${REPEATS:-3}
MODES=${MODES:-"pipelined wait1 wait4"}
E1K=${E1K:-2000}
E10K=${E10K:-500}
W1K=${W1K:-500}
W10K=${W10K:-100}
WAIT_IDLE_SECS=${WAIT_IDLE_SECS:-0}
NS=${NS:-"1000 10000"}
PEERS=${PEERS:-"tinysse nchan axum go node"}
SIZE=${SIZE:-64}
IDLE_SECS=${IDLE_SECS:-5}
PHASE_TIMEOUT=${PHASE_TIMEOUT:-180}
RUN_TIMEOUT=${RUN_TIMEOUT:-420}
BASE_PORT=${BASE_PORT:-18100}
OUT=${OUT:-/tmp/tinysse-bench/$(date +%Y%m%d-%H%M%S)}
target=${CARGO_TARGET_DIR:-$root/target}
axum_target=${AXUM_TARGET:-/tmp/bench-axum-target}
mkdir -p "$OUT"
t_start=$(date +%s)

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# File descriptors: 65536 where allowed, else the hard limit (every child inherits it).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
log "ulimit -n $(ulimit -n)"
if [ "$(ulimit -n)" -lt 10200 ]; then
  log "warning: ulimit -n $(ulimit -n) is too low for 10,000 subscribers"
fi

# --- build the main crate and the load generator (bounded) -------------------------------------
log "building tinysse and the loadgen (release, target $target)"
timeout 900 cargo build --release --quiet
tinysse_bin=$target/release/tinysse
if [ -n "${LOADGEN:-}" ]; then
  loadgen_bin=$LOADGEN
else
  timeout 900 cargo build --release --quiet --example loadgen
  loadgen_bin=$target/release/examples/loadgen
fi
[ -x "$tinysse_bin" ] || { log "missing $tinysse_bin"; exit 1; }
[ -x "$loadgen_bin" ] || { log "missing $loadgen_bin"; exit 1; }

# --- server lifecycle ------------------------------------------------------------------------
SERVER_PID=     # the process we started (its own process group)
SERVER_PGID=

stop_server() {
  [ -n "$SERVER_PGID" ] || return 0
  kill -TERM -- "-$SERVER_PGID" 2>/dev/null || true
  for _ in $(seq 100); do
    kill -0 -- "-$SERVER_PGID" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 -- "-$SERVER_PGID" 2>/dev/null; then
    log "server group $SERVER_PGID still alive after 10 s: SIGKILL"
    kill -KILL -- "-$SERVER_PGID" 2>/dev/null || true
    sleep 0.5
  fi
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID= SERVER_PGID=
}
trap 'stop_server' EXIT
trap 'log "interrupted"; exit 130' INT TERM

# Any HTTP answer (even 404) means the port is served.
port_answers() {
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$1/__ready" 2>/dev/null) || true
  [ -n "$code" ] && [ "$code" != 000 ]
}

# start_server NAME PORT TAG: starts the peer in a new session/process group; sets SERVER_PID and
# MEASURE_PID (the pid the loadgen samples: the server process, for nginx its one worker); logs go
# to $OUT/TAG.server.log.
start_server() {
  local name=$1 port=$2 tag=$3 logf="$OUT/$3.server.log"
  local -a cmd
  case $name in
    # shellcheck disable=SC2206 # TINYSSE_ARGS is split into flags on purpose
    tinysse) cmd=("$tinysse_bin" --listen "127.0.0.1:$port" --max-clients 12000 --heartbeat 0 ${TINYSSE_ARGS:-}) ;;
    # The same server with its history file on (a fresh journal per run), and an older build
    # (TINYSSE_OLD=path), to measure what a change costs in one run.
    tinysse_journal)
      rm -rf "$OUT/$tag.journal" && mkdir -p "$OUT/$tag.journal"
      cmd=("$tinysse_bin" --listen "127.0.0.1:$port" --max-clients 12000 --heartbeat 0 --history-file "$OUT/$tag.journal/history" ${TINYSSE_ARGS:-}) ;;
    tinysse_old) cmd=("${TINYSSE_OLD:?set TINYSSE_OLD to the older binary}" --listen "127.0.0.1:$port" --max-clients 12000 --heartbeat 0) ;;
    nchan)   cmd=(bash "$here/nchan/run.sh" "$port" "$OUT/$tag.run") ;;
    axum)    cmd=("$axum_target/release/ssebench-axum" "$port") ;;
    go)      cmd=("$here/go/bin/ssebench-go" "$port") ;;
    node)    cmd=(node "$here/node/server.mjs" "$port") ;;
  esac
  if port_answers "$port"; then
    log "$name: port $port is already served by something else"
    return 1
  fi
  setsid "${cmd[@]}" >"$logf" 2>&1 </dev/null &
  SERVER_PID=$!
  SERVER_PGID=$(ps -o pgid= -p "$SERVER_PID" | tr -d ' ') || SERVER_PGID=$SERVER_PID
  local ok=
  for _ in $(seq 200); do   # 20 s
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
    if port_answers "$port"; then ok=1; break; fi
    sleep 0.1
  done
  if [ -z "$ok" ]; then
    log "$name: did not answer on port $port within 20 s (log: $logf)"
    tail -5 "$logf" >&2 || true
    stop_server
    return 1
  fi
  MEASURE_PID=$SERVER_PID
  if [ "$name" = nchan ]; then
    MEASURE_PID=
    for _ in $(seq 50); do
      MEASURE_PID=$(pgrep -P "$SERVER_PID" | head -1) && [ -n "$MEASURE_PID" ] && break
      sleep 0.1
    done
    if [ -z "$MEASURE_PID" ]; then
      log "nchan: no worker process under master $SERVER_PID"
      stop_server
      return 1
    fi
  fi
}

peer_available() {
  case $1 in
    tinysse|tinysse_journal) return 0 ;;
    tinysse_old) [ -x "${TINYSSE_OLD:-}" ] ;;
    nchan)   command -v nginx >/dev/null && [ -e /usr/lib/nginx/modules/ngx_nchan_module.so ] ;;
    axum)    [ -x "$axum_target/release/ssebench-axum" ] ;;
    go)      [ -x "$here/go/bin/ssebench-go" ] ;;
    node)    command -v node >/dev/null ;;
    *)       return 1 ;;
  esac
}

# --- the runs --------------------------------------------------------------------------------
# mode_args MODE: the loadgen flags of a publisher mode.
mode_args() {
  case $1 in
    pipelined) echo "--publish-mode pipelined" ;;
    wait[0-9]*) echo "--publish-mode wait --publishers ${1#wait}" ;;
    *) return 1 ;;
  esac
}
for mode in $MODES; do
  mode_args "$mode" >/dev/null || { log "unknown mode $mode (pipelined or waitK, e.g. wait4)"; exit 1; }
done
avail=()
for peer in $PEERS; do
  if peer_available "$peer"; then
    avail+=("$peer")
  else
    log "$peer: not installed/built (run bash bench/setup.sh); skipped"
  fi
done
[ ${#avail[@]} -gt 0 ] || { log "no server to run"; exit 1; }

log "results in $OUT"
run=0
total_runs=$(( REPEATS * ${#avail[@]} * $(wc -w <<<"$NS") * $(wc -w <<<"$MODES") ))
for r in $(seq "$REPEATS"); do
  for n in $NS; do
    for mode in $MODES; do
      for peer in "${avail[@]}"; do
        run=$((run + 1))
        port=$((BASE_PORT + run))
        if [ "$mode" = pipelined ]; then
          if [ "$n" -ge 10000 ]; then e=$E10K; else e=$E1K; fi
          idle=$IDLE_SECS
        else
          if [ "$n" -ge 10000 ]; then e=$W10K; else e=$W1K; fi
          idle=$WAIT_IDLE_SECS
        fi
        tag="$peer-$n-$mode-r$r"
        rm -f "$OUT/$tag.json"
        log "[$run/$total_runs] $peer: N=$n $mode E=$e repeat $r on port $port"
        if ! start_server "$peer" "$port" "$tag"; then
          echo '{"error": "server did not start"}' >"$OUT/$tag.json"
          continue
        fi
        t0=$(date +%s)
        rc=0
        # shellcheck disable=SC2046 # mode_args is split into flags on purpose
        timeout --kill-after=10 "$RUN_TIMEOUT" "$loadgen_bin" \
          --url "http://127.0.0.1:$port" --subscribers "$n" --events "$e" --size "$SIZE" \
          --pid "$MEASURE_PID" --idle-secs "$idle" --timeout "$PHASE_TIMEOUT" --json \
          $(mode_args "$mode") ${LOADGEN_ARGS:-} \
          >"$OUT/$tag.loadgen.out" 2>"$OUT/$tag.loadgen.err" </dev/null || rc=$?
        stop_server
        line=$(grep -v '^[[:space:]]*$' "$OUT/$tag.loadgen.out" | tail -1 || true)
        if printf '%s' "$line" | python3 -c 'import json,sys; d=json.load(sys.stdin); assert isinstance(d, dict)' 2>/dev/null; then
          printf '%s\n' "$line" >"$OUT/$tag.json"
          log "$tag done in $(( $(date +%s) - t0 )) s (loadgen exit $rc): $(python3 -c '
import json,sys
d=json.loads(sys.argv[1])
f=lambda k: d.get(k)
print("answers/s", f("answers_per_sec"), "deliveries/s", f("deliveries_per_sec"), "missing", f("missing"))' "$line")"
        else
          printf '{"error": "loadgen exit %s, no JSON"}\n' "$rc" >"$OUT/$tag.json"
          log "$tag FAILED (loadgen exit $rc; see $OUT/$tag.loadgen.err)"
          tail -5 "$OUT/$tag.loadgen.err" >&2 || true
        fi
        sleep 1   # let the sockets of the last run close
      done
    done
  done
done

secs=$(( $(date +%s) - t_start ))
python3 "$here/table.py" "$OUT" --e1k "$E1K" --e10k "$E10K" --w1k "$W1K" --w10k "$W10K" --size "$SIZE" \
  --idle-secs "$IDLE_SECS" --total-secs "$secs" --tinysse-args "${TINYSSE_ARGS:-}" | tee "$OUT/table.md"
log "total $secs s; logs and JSON in $OUT"
