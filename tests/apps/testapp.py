"""Flask application that the integration tests run under Gunicorn behind ringfront.

Each endpoint returns something a test can check byte for byte: the request body, the
request headers as the application saw them, a generated pattern, a delayed response or
a chosen status.
"""

import time

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


sock = Sock(app)


@sock.route("/ws")
def websocket_echo(ws):
    # Echoes each message until the client closes. Needs a threaded worker (gthread).
    while True:
        message = ws.receive()
        if message is None:
            break
        ws.send(message)
