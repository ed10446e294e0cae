#!/usr/bin/env bash
# Scans ringfront's TLS listener with sslyze (from PyPI, installed into .venv) and writes the
# findings to docs/tls-scan-summary.txt: protocols and cipher suites accepted, key exchange
# groups, session resumption, and the downgrade, renegotiation, Heartbleed, CCS injection,
# ROBOT and compression checks.
#
# ringfront runs with a fresh self-signed ECDSA P-256 certificate on a free loopback port, and
# sslyze connects to 127.0.0.1 only; it makes no other connection and no DNS lookup for an IP
# target. testssl.sh (scripts/testssl.sh) is the tool nginx operators know, but Debian's 3.0.8
# sends DNS queries on start even with --nodns none, so that script refuses to finish here.
#
# Exits non-zero if a protocol below TLS 1.2 is accepted, a cipher suite without forward secrecy
# or with RC4, 3DES, CBC, NULL or EXPORT is accepted, resumption does not work, or a
# vulnerability check fails.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_root"
summary="$repo_root/docs/tls-scan-summary.txt"

bash scripts/setup-python.sh >/dev/null
if ! .venv/bin/python -c 'import sslyze' >/dev/null 2>&1; then
    echo "tls-scan: installing sslyze into .venv"
    .venv/bin/python -m pip install --disable-pip-version-check --quiet 'sslyze>=6,<7'
fi
cargo build --release --bin ringfront
binary="$(cargo metadata --format-version 1 --no-deps | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/ringfront"

work="$(mktemp -d)"
server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]]; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -keyout "$work/key.pem" -out "$work/cert.pem" -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost 2>/dev/null
port="$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cat > "$work/ringfront.toml" <<CONFIG
[server]
workers = 1
access_log = "off"
[https]
listen = ["127.0.0.1:$port"]
certificate = "cert.pem"
private_key = "key.pem"
server_names = ["localhost"]
CONFIG
"$binary" --config "$work/ringfront.toml" 2>"$work/ringfront.log" &
server_pid=$!
for _ in $(seq 1 50); do
    if .venv/bin/python -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; then
        break
    fi
    sleep 0.1
done

timeout 300 .venv/bin/python -m sslyze --quiet --json_out "$work/scan.json" \
    --sslv2 --sslv3 --tlsv1 --tlsv1_1 --tlsv1_2 --tlsv1_3 --resum --elliptic_curves \
    --fallback --reneg --heartbleed --robot --compression --openssl_ccs "127.0.0.1:$port"

.venv/bin/python - "$work/scan.json" "$summary" <<'CHECK'
import json
import sys

scan_path, summary_path = sys.argv[1], sys.argv[2]
with open(scan_path) as scan_file:
    server = json.load(scan_file)["server_scan_results"][0]
results = server["scan_result"]
problems = []
lines = ["TLS scan of ringfront by sslyze on 127.0.0.1 (self-signed ECDSA P-256 certificate).", ""]

def accepted(key):
    return [suite["cipher_suite"]["name"] for suite in results[key]["result"]["accepted_cipher_suites"]]

for key, label in [("ssl_2_0_cipher_suites", "SSL 2.0"), ("ssl_3_0_cipher_suites", "SSL 3.0"),
                   ("tls_1_0_cipher_suites", "TLS 1.0"), ("tls_1_1_cipher_suites", "TLS 1.1"),
                   ("tls_1_2_cipher_suites", "TLS 1.2"), ("tls_1_3_cipher_suites", "TLS 1.3")]:
    suites = accepted(key)
    lines.append(f"{label}: {'accepted' if suites else 'rejected'}")
    for name in suites:
        lines.append(f"  {name}")
    if suites and label in ("SSL 2.0", "SSL 3.0", "TLS 1.0", "TLS 1.1"):
        problems.append(f"{label} is accepted")
    for name in suites:
        weak = any(marker in name for marker in ("RC4", "3DES", "_CBC_", "NULL", "EXPORT", "anon"))
        no_forward_secrecy = label == "TLS 1.2" and "ECDHE" not in name and "DHE" not in name
        if weak or no_forward_secrecy:
            problems.append(f"weak cipher suite accepted: {name}")

curves = results["elliptic_curves"]["result"]
lines.append("")
lines.append("key exchange groups: " + ", ".join(curve["name"] for curve in curves["supported_curves"]))

resumption = results["session_resumption"]["result"]
id_resumed = resumption["session_id_successful_resumptions_count"]
id_attempted = resumption["session_id_attempted_resumptions_count"]
lines.append(f"TLS 1.2 resumption with session IDs: {id_resumed} of {id_attempted}")
lines.append(f"TLS 1.2 resumption with tickets (sslyze's check): {resumption['tls_ticket_resumption_result']}")
if id_resumed == 0:
    problems.append("TLS 1.2 session resumption does not work")

checks = [
    ("downgrade protection (TLS_FALLBACK_SCSV)", results["tls_fallback_scsv"]["result"]["supports_fallback_scsv"], True),
    ("secure renegotiation or none", not results["session_renegotiation"]["result"]["is_vulnerable_to_client_renegotiation_dos"], True),
    ("Heartbleed", results["heartbleed"]["result"]["is_vulnerable_to_heartbleed"], False),
    ("OpenSSL CCS injection", results["openssl_ccs_injection"]["result"]["is_vulnerable_to_ccs_injection"], False),
    ("TLS compression", results["tls_compression"]["result"]["supports_compression"], False),
]
lines.append("")
for label, value, wanted in checks:
    lines.append(f"{label}: {'OK' if value == wanted else 'FAILED'}")
    if value != wanted:
        problems.append(f"check failed: {label}")
robot = results["robot"]["result"]["robot_result"]
lines.append(f"ROBOT: {robot}")
if "VULNERABLE" in robot and "NOT_VULNERABLE" not in robot:
    problems.append("vulnerable to ROBOT")

lines.append("")
lines.append("problems: " + ("; ".join(problems) if problems else "none"))
with open(summary_path, "w") as summary_file:
    summary_file.write("\n".join(lines) + "\n")
print("\n".join(lines))
sys.exit(1 if problems else 0)
CHECK
