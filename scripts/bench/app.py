"""WSGI app behind the proxied cases: GET /small returns 100 bytes of plain text.

A bare WSGI callable rather than Flask, so that Gunicorn spends as little time per request as it
can and the proxy's own cost is a larger share of what the benchmark measures.
"""

SMALL_BODY = (b"small response from gunicorn for the ringfront proxy benchmark." + b"." * 100)[:100]


def app(environ, start_response):
    if environ.get("PATH_INFO") == "/small":
        start_response("200 OK", [
            ("Content-Type", "text/plain"),
            ("Content-Length", str(len(SMALL_BODY))),
        ])
        return [SMALL_BODY]
    body = b"not found\n"
    start_response("404 Not Found", [
        ("Content-Type", "text/plain"),
        ("Content-Length", str(len(body))),
    ])
    return [body]
