"""Measure the median time of one GET over a keep-alive connection, in microseconds.

Sends REQUESTS sequential requests for PATH on one connection, either straight to Gunicorn's
Unix socket or through a proxy over TLS, checks that each response is 200 with the expected body
length, and prints the median and the 90th percentile. The first WARMUP requests are not timed.
The run stops after MAX_SECONDS even if fewer requests were sent.

Usage:
  latency.py unix SOCKET_PATH PATH REQUESTS
  latency.py tls HOST PORT PATH REQUESTS
"""

import http.client
import socket
import ssl
import statistics
import sys
import time

WARMUP = 50
MAX_SECONDS = 30.0


class UnixConnection(http.client.HTTPConnection):
    """HTTPConnection that connects to a Unix socket path instead of a TCP address."""

    def __init__(self, path: str):
        super().__init__("localhost")
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.unix_path)


def open_connection(argv):
    if argv[0] == "unix":
        return UnixConnection(argv[1]), argv[2], int(argv[3])
    if argv[0] == "tls":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        connection = http.client.HTTPSConnection(argv[1], int(argv[2]), context=context)
        return connection, argv[3], int(argv[4])
    raise SystemExit(f"latency.py: unknown mode {argv[0]!r}; expected unix or tls")


def main() -> int:
    connection, path, requests = open_connection(sys.argv[1:])
    headers = {"Host": "localhost"}
    samples = []
    deadline = time.monotonic() + MAX_SECONDS
    expected_length = None

    for index in range(WARMUP + requests):
        if time.monotonic() > deadline:
            break
        start = time.perf_counter_ns()
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        body = response.read()
        elapsed = time.perf_counter_ns() - start

        if response.status != 200:
            print(f"latency.py: {path} returned status {response.status}", file=sys.stderr)
            return 1
        if expected_length is None:
            expected_length = len(body)
        elif len(body) != expected_length:
            print(f"latency.py: body length changed from {expected_length} to {len(body)}", file=sys.stderr)
            return 1
        if index >= WARMUP:
            samples.append(elapsed / 1000.0)

    if len(samples) < requests // 2:
        print(f"latency.py: only {len(samples)} of {requests} requests finished in {MAX_SECONDS}s", file=sys.stderr)
        return 1
    samples.sort()
    p90 = samples[int(len(samples) * 0.9)]
    print(f"{statistics.median(samples):.1f} {p90:.1f} {len(samples)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
