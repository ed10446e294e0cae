"""Demo Flask application that scripts/demo.sh runs under Gunicorn behind ringfront.

The home page loads its stylesheet, script and images from /static/ and /resources/, which
ringfront serves from disk. The form posts to /echo and /api/info returns JSON, and ringfront
proxies both to Gunicorn.
"""

import datetime
import importlib.metadata
import platform

from flask import Flask, jsonify, render_template_string, request

app = Flask(__name__)

PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{{ title }} · ringfront demo</title>
  <link rel="stylesheet" href="/static/style.css">
  <link rel="icon" href="/static/img/logo.svg" type="image/svg+xml">
  <script src="/static/app.js" defer></script>
</head>
<body>
  <header class="masthead">
    <img src="/static/img/logo.svg" alt="" width="40" height="40">
    <h1>{{ title }}</h1>
  </header>
  <main>
    {{ body | safe }}
  </main>
  <footer>
    Rendered by Flask {{ flask_version }} on Python {{ python_version }}.
    Static files come from ringfront, this page from Gunicorn.
  </footer>
</body>
</html>
"""

HOME = """
<section class="card">
  <h2>What you are looking at</h2>
  <p>This page was rendered by Flask in a Gunicorn worker. Its stylesheet, script and images
  were served by ringfront straight from <code>demo/site/</code>, gzip-compressed when your
  browser asked for it.</p>
  <img class="banner" src="/resources/banner.svg" alt="Requests flow from the browser through
  ringfront to Gunicorn" width="640" height="160">
</section>
<section class="card">
  <h2>Send a form</h2>
  <form method="post" action="/echo">
    <label>Name <input name="name" value="Ada"></label>
    <label>Message <textarea name="message" rows="3">Hello through ringfront</textarea></label>
    <button type="submit">Post it</button>
  </form>
</section>
<section class="card">
  <h2>Ask for JSON</h2>
  <p><button id="load-info" type="button">GET /api/info</button></p>
  <pre id="info" class="output">Press the button.</pre>
</section>
<section class="card">
  <h2>Plain static pages</h2>
  <p><a href="/static/index.html">/static/index.html</a> is a page that never touches Python.</p>
</section>
"""

ECHO = """
<section class="card">
  <h2>The application received</h2>
  <table>
    {% for name, value in fields %}
    <tr><th>{{ name }}</th><td>{{ value }}</td></tr>
    {% endfor %}
  </table>
  <p>Client address as forwarded by ringfront: <code>{{ forwarded_for }}</code>,
  scheme <code>{{ scheme }}</code>.</p>
  <p><a href="/">Back</a></p>
</section>
"""


def render_page(title, body, **context):
    return render_template_string(
        PAGE,
        title=title,
        body=render_template_string(body, **context),
        flask_version=importlib.metadata.version("flask"),
        python_version=platform.python_version(),
    )


@app.route("/")
def home():
    return render_page("Hello from Gunicorn", HOME)


@app.route("/echo", methods=["POST"])
def echo():
    return render_page(
        "Form received",
        ECHO,
        fields=list(request.form.items()),
        forwarded_for=request.headers.get("X-Forwarded-For", "(none)"),
        scheme=request.headers.get("X-Forwarded-Proto", request.scheme),
    )


@app.route("/api/info")
def info():
    return jsonify(
        server="gunicorn",
        time=datetime.datetime.now(datetime.timezone.utc).isoformat(),
        host=request.headers.get("Host"),
        forwarded_for=request.headers.get("X-Forwarded-For"),
        forwarded_proto=request.headers.get("X-Forwarded-Proto"),
        user_agent=request.headers.get("User-Agent"),
    )
