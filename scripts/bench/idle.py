"""Open many TLS keep-alive connections to a server, send one request on each, and hold them idle.

Connections open in batches of BATCH. Each one completes the TLS handshake, sends one GET for
PATH, reads the whole response, and then stays open without traffic. When all are open the
script prints "ready N" on stdout and keeps them open until it gets SIGTERM or HOLD_SECONDS pass.
Opening stops with an error after OPEN_SECONDS.

Usage: idle.py HOST PORT PATH COUNT
"""

import asyncio
import signal
import ssl
import sys

BATCH = 200
OPEN_SECONDS = 120.0
HOLD_SECONDS = 120.0
RESPONSE_SECONDS = 10.0


async def open_one(host: str, port: int, path: str, context: ssl.SSLContext):
    reader, writer = await asyncio.open_connection(host, port, ssl=context, server_hostname="localhost")
    writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    await writer.drain()

    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), RESPONSE_SECONDS)
    status_line, _, rest = head.partition(b"\r\n")
    if b" 200 " not in status_line:
        raise RuntimeError(f"expected status 200, got status line {status_line!r}")
    length = None
    for line in rest.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length is None:
        raise RuntimeError("response has no Content-Length")
    await asyncio.wait_for(reader.readexactly(length), RESPONSE_SECONDS)
    return reader, writer


async def run(host: str, port: int, path: str, count: int) -> int:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE

    connections = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + OPEN_SECONDS
    while len(connections) < count:
        if loop.time() > deadline:
            print(f"idle.py: opened {len(connections)} of {count} connections in {OPEN_SECONDS}s", file=sys.stderr)
            return 1
        batch = min(BATCH, count - len(connections))
        results = await asyncio.gather(
            *(open_one(host, port, path, context) for _ in range(batch)), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                print(f"idle.py: connection {len(connections)} failed: {result!r}", file=sys.stderr)
                return 1
            connections.append(result)

    print(f"ready {len(connections)}", flush=True)

    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), HOLD_SECONDS)
    except asyncio.TimeoutError:
        print(f"idle.py: no SIGTERM within {HOLD_SECONDS}s; closing the connections", file=sys.stderr)

    for _, writer in connections:
        writer.transport.abort()
    return 0


def main() -> int:
    if len(sys.argv) != 5:
        print("usage: idle.py HOST PORT PATH COUNT", file=sys.stderr)
        return 2
    host, port, path, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    return asyncio.run(run(host, port, path, count))


if __name__ == "__main__":
    sys.exit(main())
