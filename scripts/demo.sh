#!/usr/bin/env bash
# Runs the demo: Gunicorn with demo/app.py on a Unix socket, and ringfront in front of it on
# 127.0.0.1 with a self-signed certificate for localhost. Ctrl-C stops both, and so does the
# exit of either one.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"

demo="$repo_root/demo"
run="$demo/run"
config="$demo/ringfront.toml"
socket="$run/gunicorn.sock"

# Seconds to wait for each server to start listening, and for each to exit after SIGTERM.
STARTUP_SECONDS=15
STOP_SECONDS=15

say() {
    printf 'demo: %s\n' "$*"
}

bash scripts/setup-python.sh

if ! command -v openssl >/dev/null 2>&1; then
    if [[ $(id -u) -ne 0 ]]; then
        say "the openssl command is missing; install it (Debian: apt-get install openssl) and rerun" >&2
        exit 1
    fi
    say "installing openssl"
    apt-get update
    apt-get install -y openssl
fi

mkdir -p "$run"
if [[ -s "$run/cert.pem" && -s "$run/key.pem" ]]; then
    say "using the certificate in $run"
else
    say "creating a self-signed certificate for localhost in $run"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$run/key.pem" -out "$run/cert.pem" -days 365 -subj "/CN=localhost" \
        -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null
fi

if [[ -f "$config" ]]; then
    say "using $config"
else
    say "writing $config"
    cat >"$config" <<'TOML'
# ringfront config for scripts/demo.sh. Relative paths resolve against this file's directory.

[server]
workers = 0                 # one worker thread per core
access_log = "stdout"
shutdown_grace = "10s"

[redirect]
listen = ["127.0.0.1:8080"]

[https]
listen = ["127.0.0.1:8443"]
certificate = "run/cert.pem"
private_key = "run/key.pem"
server_names = ["localhost"]

[http]
listen = ["127.0.0.1:8081"]

[[static]]
prefix = "/static/"
dir = "site/static"

[[static]]
prefix = "/resources/"
dir = "site/resources"

[upstream]
unix = "run/gunicorn.sock"
connect_timeout = "5s"
read_timeout = "60s"
TOML
fi

say "building ringfront (release)"
cargo build --release --bin ringfront
# Cargo's target directory moves with CARGO_TARGET_DIR or build.target-dir, so ask Cargo for it.
target_dir="$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
ringfront="$target_dir/release/ringfront"

gunicorn_pid=""
ringfront_pid=""

# Sends SIGTERM to a process and waits up to STOP_SECONDS for it to exit, then sends SIGKILL
# if it is still running.
stop_process() {
    local name="$1" pid="$2"
    if [[ -z "$pid" ]] || ! kill -0 "$pid" 2>/dev/null; then
        return 0
    fi
    say "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((tick = 0; tick < STOP_SECONDS * 10; tick++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "$name did not exit within ${STOP_SECONDS}s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    trap - EXIT INT TERM
    stop_process ringfront "$ringfront_pid"
    stop_process gunicorn "$gunicorn_pid"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Each server runs in its own session, so Ctrl-C reaches only this script, which then sends each
# server one SIGTERM. A second signal would make ringfront skip waiting for requests in flight.
say "starting Gunicorn (2 sync workers) on $socket"
rm -f "$socket"
# Gunicorn's default log format, with the client address from ringfront's X-Forwarded-For in
# place of the peer address, which a Unix socket does not have.
setsid "$repo_root/.venv/bin/gunicorn" --chdir "$demo" --bind "unix:$socket" \
    --workers 2 --worker-class sync --access-logfile - --no-control-socket \
    --access-logformat '%({x-forwarded-for}i)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"' app:app &
gunicorn_pid=$!

for ((tick = 0; tick < STARTUP_SECONDS * 10; tick++)); do
    [[ -S "$socket" ]] && break
    if ! kill -0 "$gunicorn_pid" 2>/dev/null; then
        say "Gunicorn exited during startup; its output is above" >&2
        exit 1
    fi
    sleep 0.1
done
if [[ ! -S "$socket" ]]; then
    say "Gunicorn did not create $socket within ${STARTUP_SECONDS}s" >&2
    exit 1
fi

say "starting ringfront with $config"
setsid "$ringfront" --config "$config" &
ringfront_pid=$!

# The URLs below are worth printing only once the HTTPS listener accepts connections.
for ((tick = 0; tick < STARTUP_SECONDS * 10; tick++)); do
    if ! kill -0 "$ringfront_pid" 2>/dev/null; then
        wait "$ringfront_pid" && status=0 || status=$?
        say "ringfront exited during startup (status $status); its output is above" >&2
        exit 1
    fi
    (exec 3<>/dev/tcp/127.0.0.1/8443) 2>/dev/null && break
    sleep 0.1
done

cat <<EOF_URLS

  https://localhost:8443/                  Flask home page over TLS (self-signed certificate)
  https://localhost:8443/static/index.html a static page served from demo/site/static
  https://localhost:8443/api/info          JSON from Flask
  http://localhost:8081/                   the same routes without TLS
  http://localhost:8080/                   redirects to https://localhost:8443/

  Try: curl -k https://localhost:8443/api/info
  Press Ctrl-C to stop.

EOF_URLS

# `wait -n` returns as soon as either process exits. A signal interrupts it and runs the trap.
set +e
wait -n "$gunicorn_pid" "$ringfront_pid"
status=$?
set -e

if ! kill -0 "$ringfront_pid" 2>/dev/null; then
    say "ringfront exited (status $status)"
else
    say "Gunicorn exited (status $status)"
fi
exit "$status"
