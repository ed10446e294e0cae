#!/usr/bin/env bash
# Stress test against a release build of ringfront on 127.0.0.1, in one of two modes:
#
#   scripts/stress.sh crowd   (default) Slow clients all at once: heads trickled a byte at a
#                             time, bodies trickled a byte per second, and clients that never
#                             read a large static response. Meanwhile a normal client makes
#                             sequential requests. Prints its p50/p99 latency, ringfront's RSS
#                             and open descriptors before, during and after, and exits non-zero
#                             if the p99 is not below STRESS_P99_LIMIT_MS or if the slow
#                             connections are still open after their timeouts.
#   scripts/stress.sh idle    Idle keep-alive connections, plain then TLS, each after one
#                             request. Prints ringfront's RSS per connection.
#
# Settings (environment variables, defaults in brackets):
#   STRESS_WORKERS          ringfront worker threads [1]
#   STRESS_HEADS            clients trickling a request head [1000]
#   STRESS_HEAD_INTERVAL    seconds between two bytes of a trickled head [0.5]
#   STRESS_BODIES           clients trickling a body at one byte per second [200]
#   STRESS_NON_READERS      clients that never read a 4 MiB response [200]
#   STRESS_NORMAL_REQUESTS  sequential requests of the normal client, 10 ms apart [500]
#   STRESS_P99_LIMIT_MS     p99 latency in ms that the crowd mode must stay below [50]
#   STRESS_IDLE_PLAIN       idle plain connections in idle mode [10000]
#   STRESS_IDLE_TLS         idle TLS connections in idle mode [5000]
#   STRESS_BINARY           ringfront binary [target/release/ringfront, built if missing]
#
# The run is bounded: each phase has its own time limit, and `timeout` stops the load generator
# once STRESS_MAX_SECONDS [240] have passed since the build. Every process the script starts is
# stopped on exit.
# It needs Linux (/proc), Python 3 and the openssl command line tool.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

mode="${1:-crowd}"
case "$mode" in
    crowd | idle) ;;
    *)
        echo "usage: scripts/stress.sh [crowd|idle]" >&2
        exit 2
        ;;
esac

STRESS_WORKERS="${STRESS_WORKERS:-1}"
STRESS_HEADS="${STRESS_HEADS:-1000}"
STRESS_HEAD_INTERVAL="${STRESS_HEAD_INTERVAL:-0.5}"
STRESS_BODIES="${STRESS_BODIES:-200}"
STRESS_NON_READERS="${STRESS_NON_READERS:-200}"
STRESS_NORMAL_REQUESTS="${STRESS_NORMAL_REQUESTS:-500}"
STRESS_P99_LIMIT_MS="${STRESS_P99_LIMIT_MS:-50}"
STRESS_IDLE_PLAIN="${STRESS_IDLE_PLAIN:-10000}"
STRESS_IDLE_TLS="${STRESS_IDLE_TLS:-5000}"
STRESS_MAX_SECONDS="${STRESS_MAX_SECONDS:-240}"
binary="${STRESS_BINARY:-target/release/ringfront}"

# Seconds to wait for ringfront to listen after it starts, and to exit after SIGTERM.
STARTUP_SECONDS=15
STOP_SECONDS=15

say() {
    printf 'stress: %s\n' "$*"
}

if [[ -z "${STRESS_BINARY:-}" ]]; then
    say "building the release binary"
    cargo build --release --bin ringfront
fi
if [[ ! -x "$binary" ]]; then
    say "no executable at $binary" >&2
    exit 1
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/rf-stress-XXXXXX")"
ringfront_pid=""

cleanup() {
    if [[ -n "$ringfront_pid" ]] && kill -0 "$ringfront_pid" 2>/dev/null; then
        kill -TERM "$ringfront_pid" 2>/dev/null || true
        for _ in $(seq 1 $((STOP_SECONDS * 10))); do
            kill -0 "$ringfront_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$ringfront_pid" 2>/dev/null || true
        wait "$ringfront_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# Two loopback ports that were free a moment ago.
read -r http_port https_port < <(python3 - <<'PY'
import socket
sockets = [socket.socket() for _ in range(2)]
for s in sockets:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in sockets))
PY
)

mkdir -p "$work/static"
printf 'a small file for the normal client\n' >"$work/static/small.txt"
# 4 MiB: more than the kernel buffers for a client with a 4 KiB receive buffer.
head -c $((4 * 1024 * 1024)) /dev/zero | tr '\0' 'x' >"$work/static/big.bin"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$work/key.pem" -out "$work/cert.pem" -days 1 -subj "/CN=localhost" \
    -addext "subjectAltName=DNS:localhost" 2>/dev/null

# The crowd's timeouts: heads are cut at 10 s, bodies (which never pause for 5 s) at 15 s, and
# non-readers 5 s after their last accepted write. Idle connections must outlive the idle mode.
cat >"$work/ringfront.toml" <<TOML
[server]
workers = $STRESS_WORKERS
access_log = "off"
log_level = "warn"
max_connections = 20000

[http]
listen = ["127.0.0.1:$http_port"]

[https]
listen = ["127.0.0.1:$https_port"]
certificate = "cert.pem"
private_key = "key.pem"
server_names = ["localhost"]

[timeouts]
handshake = "10s"
request_head = "10s"
body_read = "5s"
request_body = "15s"
keepalive = "200s"
send = "5s"

[[static]]
prefix = "/static/"
dir = "static"
TOML

# Starts ringfront in the background and waits until both ports accept connections.
start_ringfront() {
    "$binary" --config "$work/ringfront.toml" >>"$work/ringfront.log" 2>&1 &
    ringfront_pid=$!
    local port attempt
    for port in "$http_port" "$https_port"; do
        for attempt in $(seq 1 $((STARTUP_SECONDS * 10))); do
            if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
                break
            fi
            if ! kill -0 "$ringfront_pid" 2>/dev/null || [[ $attempt -eq $((STARTUP_SECONDS * 10)) ]]; then
                say "ringfront did not start listening on port $port:" >&2
                cat "$work/ringfront.log" >&2
                exit 1
            fi
            sleep 0.1
        done
    done
    say "ringfront $binary (pid $ringfront_pid, $STRESS_WORKERS worker(s)) on ports $http_port and $https_port"

    # Load the 4 MiB file into ringfront's cache, so the starting figures include it.
    python3 - "$http_port" <<'PY'
import socket, sys
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10) as s:
    s.sendall(b"GET /static/big.bin HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    while s.recv(1 << 20):
        pass
PY
    sleep 0.5
}

# Stops ringfront with SIGTERM, and with SIGKILL if it is still running after STOP_SECONDS.
# Fails if it had already exited, which means it died during the run.
stop_ringfront() {
    if ! kill -0 "$ringfront_pid" 2>/dev/null; then
        say "ringfront exited during the run:" >&2
        cat "$work/ringfront.log" >&2
        exit 1
    fi
    kill -TERM "$ringfront_pid" 2>/dev/null || true
    for _ in $(seq 1 $((STOP_SECONDS * 10))); do
        kill -0 "$ringfront_pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$ringfront_pid" 2>/dev/null || true
    wait "$ringfront_pid" 2>/dev/null || true
    ringfront_pid=""
}

# Runs the load generator with the given arguments, stopped by `timeout` once the run's time
# budget (STRESS_MAX_SECONDS from the end of the build) is spent.
stress() {
    local left=$((load_deadline - SECONDS))
    if ((left < 10)); then
        say "the time budget of ${STRESS_MAX_SECONDS} s is spent" >&2
        return 1
    fi
    timeout --signal=TERM --kill-after=10 "$left" python3 scripts/stress/stress.py "$@"
}

status=0
load_deadline=$((SECONDS + STRESS_MAX_SECONDS))
if [[ "$mode" == crowd ]]; then
    start_ringfront
    stress crowd --port "$http_port" --pid "$ringfront_pid" \
        --heads "$STRESS_HEADS" --head-interval "$STRESS_HEAD_INTERVAL" \
        --bodies "$STRESS_BODIES" --non-readers "$STRESS_NON_READERS" \
        --normal-requests "$STRESS_NORMAL_REQUESTS" --p99-limit-ms "$STRESS_P99_LIMIT_MS" ||
        status=$?
    stop_ringfront
else
    # A fresh server for each kind, so that memory freed by the first does not hide the cost
    # of the second.
    start_ringfront
    stress idle --port "$http_port" --pid "$ringfront_pid" --count "$STRESS_IDLE_PLAIN" ||
        status=$?
    stop_ringfront
    start_ringfront
    stress idle --tls --port "$https_port" --pid "$ringfront_pid" --count "$STRESS_IDLE_TLS" ||
        status=$?
    stop_ringfront
fi

if [[ -s "$work/ringfront.log" ]]; then
    say "ringfront warnings and errors (last 10 lines):"
    tail -n 10 "$work/ringfront.log"
fi
exit "$status"
