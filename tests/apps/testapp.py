"""Flask application that the integration tests run under Gunicorn behind ringfront.

Each endpoint returns something a test can check byte for byte: the request body, the
request headers as the application saw them, a generated pattern, a delayed response or
a chosen status. Others return the identity of the upstream connection, or stream and
wait for the test between chunks.
"""

import itertools
import os
import threading
import time
import weakref

from flask import Flask, Response, abort, jsonify, request
from flask_sock import Sock

app = Flask(__name__)

# Headers that /headers reports when present, under their lower-case names.
REPORTED_HEADERS = (
    "Host",
    "Content-Length",
    "Content-Type",
    "Transfer-Encoding",
    "Connection",
    "X-Forwarded-For",
    "X-Forwarded-Proto",
    "X-Forwarded-Host",
    "X-Forwarded-Port",
    "X-Request-Marker",
    "Expect",
    "Forwarded",
    "Keep-Alive",
    "Te",
)

# Upper bound for /big and /slow so that a wrong test argument cannot tie up a worker.
MAX_BIG_BYTES = 64 * 1024 * 1024
MAX_SLOW_MS = 30_000

ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@app.route("/hello")
def hello():
    return Response("hello from gunicorn\n", mimetype="text/plain")


@app.route("/echo", methods=ALL_METHODS)
def echo():
    return Response(request.get_data(cache=False), mimetype="application/octet-stream")


@app.route("/headers", methods=ALL_METHODS)
def headers():
    # Read the whole body, because closing a socket with unread data makes the kernel send a
    # reset that can discard the response.
    request.get_data(cache=False)
    seen = {}
    for name in REPORTED_HEADERS:
        value = request.headers.get(name)
        if value is not None:
            seen[name.lower()] = value
    return jsonify(seen)


def pattern_bytes(count):
    """Return `count` bytes of the repeating sequence 0, 1, ..., 255."""
    block = bytes(range(256))
    repeats, rest = divmod(count, len(block))
    return block * repeats + block[:rest]


@app.route("/big")
def big():
    count = request.args.get("bytes", default=0, type=int)
    if count < 0 or count > MAX_BIG_BYTES:
        abort(400)
    return Response(pattern_bytes(count), mimetype="application/octet-stream")


@app.route("/slow")
def slow():
    delay_ms = request.args.get("ms", default=0, type=int)
    if delay_ms < 0 or delay_ms > MAX_SLOW_MS:
        abort(400)
    time.sleep(delay_ms / 1000)
    return Response(f"slept {delay_ms} ms\n", mimetype="text/plain")


@app.route("/status/<int:code>", methods=ALL_METHODS)
def status(code):
    if code < 200 or code > 599:
        abort(400)
    # RFC 9110 §15.3.5 and §15.4.5: 204 and 304 responses carry no content.
    body = "" if code in (204, 304) else f"status {code}\n"
    return Response(body, status=code, mimetype="text/plain")


# Upper bound for the waits of /hold and /stream, so that a test that never creates the
# release file cannot tie up a worker.
MAX_WAIT_SECONDS = 10

# Upper bounds for /drip, so that a wrong test argument cannot tie up a worker.
MAX_DRIP_COUNT = 100
MAX_DRIP_INTERVAL_MS = 5_000

# Serial numbers of the connections this worker has served, keyed by socket object. A weak key
# lets a closed connection's entry go, and a serial, unlike id() or fileno(), is never reused.
_connection_serials = weakref.WeakKeyDictionary()
_connection_counter = itertools.count(1)
_connection_lock = threading.Lock()


def connection_identity():
    """Return the Gunicorn master pid, worker pid and connection serial of this request."""
    sock = request.environ.get("gunicorn.socket")
    with _connection_lock:
        serial = _connection_serials.get(sock)
        if serial is None:
            serial = next(_connection_counter)
            _connection_serials[sock] = serial
    return {
        "master": str(os.getppid()),
        "worker": str(os.getpid()),
        "connection": str(serial),
    }


def wait_for_file(path):
    """Wait until `path` exists, at most MAX_WAIT_SECONDS. Return whether it appeared."""
    deadline = time.monotonic() + MAX_WAIT_SECONDS
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return True
        time.sleep(0.02)
    return False


@app.route("/conn", methods=ALL_METHODS)
def conn():
    request.get_data(cache=False)
    return jsonify(connection_identity())


@app.route("/hold")
def hold():
    """Append a line to the file `mark`, wait for the file `release`, then return the identity.

    The lines in `mark` count the requests that reached the app.
    """
    mark = request.args.get("mark", "")
    release = request.args.get("release", "")
    if not mark or not release:
        abort(400)
    with open(mark, "a", encoding="utf-8") as marks:
        marks.write("entered\n")
    if not wait_for_file(release):
        abort(500)
    return jsonify(connection_identity())


@app.route("/stream")
def stream():
    """Stream three chunks with `X-Accel-Buffering: no`. The last one waits for `release`."""
    release = request.args.get("release", "")
    if not release:
        abort(400)

    def generate():
        yield b"first chunk\n"
        time.sleep(0.05)
        yield b"second chunk\n"
        if not wait_for_file(release):
            yield b"release file never appeared\n"
            return
        yield b"last chunk\n"

    response = Response(generate(), mimetype="text/plain")
    response.headers["X-Accel-Buffering"] = "no"
    return response


@app.route("/drip")
def drip():
    """Send one byte every `interval_ms` milliseconds, `count` times, without a length."""
    count = request.args.get("count", default=1, type=int)
    interval_ms = request.args.get("interval_ms", default=0, type=int)
    if not 0 <= count <= MAX_DRIP_COUNT or not 0 <= interval_ms <= MAX_DRIP_INTERVAL_MS:
        abort(400)

    def generate():
        for _ in range(count):
            time.sleep(interval_ms / 1000)
            yield b"."

    return Response(generate(), mimetype="text/plain")


@app.route("/die")
def die():
    """Declare `length` bytes, send `sent` of them, then end the worker process.

    With `unbuffered=1` the response requests streaming from the proxy (`X-Accel-Buffering: no`).
    """
    length = request.args.get("length", default=0, type=int)
    sent = request.args.get("sent", default=0, type=int)
    if not 0 <= sent < length <= MAX_BIG_BYTES:
        abort(400)

    def generate():
        yield pattern_bytes(sent)
        # Exits without closing anything cleanly, as a crashed or OOM-killed worker would.
        os._exit(1)

    response = Response(generate(), mimetype="application/octet-stream")
    response.headers["Content-Length"] = str(length)
    if request.args.get("unbuffered") == "1":
        response.headers["X-Accel-Buffering"] = "no"
    return response


websockets = Sock(app)


@websockets.route("/ws")
def websocket_echo(ws):
    # Echoes each message until the client closes. Needs a threaded worker (gthread).
    while True:
        message = ws.receive()
        if message is None:
            break
        ws.send(message)
