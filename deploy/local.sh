#!/usr/bin/env bash
# Run troupe on NATS on this machine: one nats-server (deploy/nats.conf, JetStream on) and N
# `troupe worker` processes. Gateways (`troupe app-server --nats`, `troupe exec --nats`) then
# connect to the printed URL.
#
#   deploy/local.sh start [--port 4222] [--workers 2] [--capacity 8] [--dir DIR] [--namespace NS]
#   deploy/local.sh stop  [--dir DIR]
#   deploy/local.sh status [--dir DIR]
#
# DIR (default ${TMPDIR:-/tmp}/troupe-local) holds the pid files, the logs and the JetStream
# store. Workers inherit this shell's environment (OPENAI_API_KEY, OPENAI_BASE_URL, TROUPE_*);
# they log at TROUPE_LOG=info unless it is set.
# `stop` sends one SIGTERM to each worker (each drains: its sessions shut down cleanly), waits
# until every worker has exited, then stops nats-server and waits for it too.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
nats_bin="${NATS_SERVER_BIN:-$(command -v nats-server || echo /usr/sbin/nats-server)}"
node_bin="${NODE:-node}"
troupe_bin="${TROUPE_BIN:-$root/bin/troupe.js}"

command="${1:-}"
[ $# -gt 0 ] && shift
port=4222
workers=2
capacity=8
namespace=default
dir="${TROUPE_LOCAL_DIR:-${TMPDIR:-/tmp}/troupe-local}"
while [ $# -gt 0 ]; do
  case "$1" in
    --port) port="$2"; shift 2 ;;
    --workers) workers="$2"; shift 2 ;;
    --capacity) capacity="$2"; shift 2 ;;
    --dir) dir="$2"; shift 2 ;;
    --namespace) namespace="$2"; shift 2 ;;
    *) echo "local.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

# setsid (where it exists) puts each process in a session of its own, away from this terminal.
detach=()
command -v setsid >/dev/null 2>&1 && detach=(setsid)

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

# Waits for a signalled pid to exit, SIGKILL after $2 seconds. Each process is signalled once:
# a second SIGTERM tells a draining worker to give up its drain.
wait_pid() {
  local pid="$1" grace="$2" waited=0
  while alive "$pid"; do
    if [ "$waited" -eq $((grace * 10)) ]; then
      echo "local.sh: pid $pid did not stop within ${grace}s; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
}

stop_all() {
  shopt -s nullglob
  local pids=()
  for file in "$dir"/worker-*.pid; do pids+=("$(cat "$file")"); done
  # Workers drain in parallel, and before the server they need to say goodbye through: stop
  # returns once every worker has drained and exited.
  for pid in "${pids[@]}"; do alive "$pid" && kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait_pid "$pid" 60; done
  rm -f "$dir"/worker-*.pid "$dir"/worker-*.ready
  if [ -f "$dir/nats.pid" ]; then
    local nats
    nats="$(cat "$dir/nats.pid")"
    alive "$nats" && kill -TERM "$nats" 2>/dev/null || true
    wait_pid "$nats" 30
    rm -f "$dir/nats.pid"
  fi
}

start() {
  if [ -f "$dir/nats.pid" ] && alive "$(cat "$dir/nats.pid")"; then
    echo "local.sh: already running in $dir (local.sh stop --dir $dir first)" >&2
    exit 1
  fi
  mkdir -p "$dir/jetstream" "$dir/logs"
  # The processes outlive this script; their stdio goes to the logs only.
  "${detach[@]}" "$nats_bin" -c "$here/nats.conf" -a 127.0.0.1 -p "$port" -sd "$dir/jetstream" \
    </dev/null >"$dir/logs/nats.log" 2>&1 &
  echo $! >"$dir/nats.pid"
  local waited=0
  until grep -q "Server is ready" "$dir/logs/nats.log" 2>/dev/null; do
    if ! alive "$(cat "$dir/nats.pid")" || [ "$waited" -ge 150 ]; then
      echo "local.sh: nats-server did not start:" >&2
      cat "$dir/logs/nats.log" >&2
      stop_all
      exit 1
    fi
    sleep 0.1
    waited=$((waited + 1))
  done

  local url="nats://127.0.0.1:$port"
  for i in $(seq 1 "$workers"); do
    TROUPE_LOG="${TROUPE_LOG:-info}" "${detach[@]}" "$node_bin" "$troupe_bin" worker --nats "$url" --namespace "$namespace" --worker-id "local-$i" \
      --capacity "$capacity" --ready-file "$dir/worker-$i.ready" \
      </dev/null >"$dir/logs/worker-$i.log" 2>&1 &
    echo $! >"$dir/worker-$i.pid"
  done
  for i in $(seq 1 "$workers"); do
    waited=0
    until [ -f "$dir/worker-$i.ready" ]; do
      if ! alive "$(cat "$dir/worker-$i.pid")" || [ "$waited" -ge 300 ]; then
        echo "local.sh: worker local-$i did not become ready:" >&2
        cat "$dir/logs/worker-$i.log" >&2
        stop_all
        exit 1
      fi
      sleep 0.1
      waited=$((waited + 1))
    done
  done
  echo "troupe: NATS at $url with $workers worker(s) (namespace $namespace); logs in $dir/logs"
  echo "  TROUPE_NATS_URL=$url troupe exec \"…\"    or    troupe app-server --nats $url"
}

status() {
  shopt -s nullglob
  local code=0
  for file in "$dir/nats.pid" "$dir"/worker-*.pid; do
    [ -f "$file" ] || continue
    local pid
    pid="$(cat "$file")"
    if alive "$pid"; then echo "$(basename "$file" .pid): running (pid $pid)"; else echo "$(basename "$file" .pid): gone"; code=1; fi
  done
  return "$code"
}

case "$command" in
  start) start ;;
  stop) stop_all ;;
  status) status ;;
  *) sed -n '2,15p' "$0" >&2; exit 2 ;;
esac
