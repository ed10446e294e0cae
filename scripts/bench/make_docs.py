"""Write the benchmark's text documents: 1k.txt, app.css and app.js.

The CSS and JS are generated from a fixed seed, so every run serves the same bytes. They mix
repeated structure (selectors, property names, keywords) with varied values and identifiers.
gzip -9 compresses them about 7 times (app.css from 112,640 to 16,286 bytes), far less than it
would compress one block repeated over and over.

Usage: make_docs.py DIR
"""

import random
import sys
from pathlib import Path

# Target sizes in bytes: a mid-sized site stylesheet and a bundled script.
CSS_BYTES = 110 * 1024
JS_BYTES = 160 * 1024
TEXT_BYTES = 1024

SEED = 20240611

WORDS = (
    "header nav menu item link button card panel modal dialog form input label field grid row "
    "col container footer sidebar content title subtitle badge alert toast tooltip dropdown tab "
    "list table cell avatar icon banner hero section article media figure caption search user "
    "profile settings account cart product price checkout order status progress spinner"
).split()

STATES = ["hover", "focus", "active", "disabled", "first-child", "last-child", "focus-visible"]

COLORS = ["#1f2933", "#323f4b", "#3e4c59", "#52606d", "#616e7c", "#7b8794", "#9aa5b1",
          "#0b69a3", "#127fbf", "#1992d4", "#2bb0ed", "#d64545", "#e66a6a", "#f7d070", "#fff"]


def css_rule(rng: random.Random) -> str:
    """Return one CSS rule with a BEM-style selector and 2 to 7 declarations."""
    block = rng.choice(WORDS)
    selector = f".{block}"
    if rng.random() < 0.6:
        selector += f"__{rng.choice(WORDS)}"
    if rng.random() < 0.3:
        selector += f"--{rng.choice(['primary', 'secondary', 'large', 'small', 'muted', 'dark'])}"
    if rng.random() < 0.25:
        selector += f":{rng.choice(STATES)}"
    if rng.random() < 0.2:
        selector += f" > .{rng.choice(WORDS)}"

    declarations = []
    for _ in range(rng.randint(2, 7)):
        kind = rng.randrange(10)
        if kind == 0:
            declarations.append(f"color: {rng.choice(COLORS)}")
        elif kind == 1:
            declarations.append(f"background-color: {rng.choice(COLORS)}")
        elif kind == 2:
            declarations.append(f"padding: {rng.randint(0, 48)}px {rng.randint(0, 48)}px")
        elif kind == 3:
            declarations.append(f"margin: {rng.randint(0, 12) / 4:g}rem 0")
        elif kind == 4:
            declarations.append(f"font-size: {rng.randint(10, 40) / 16:.4g}rem")
        elif kind == 5:
            declarations.append(f"border: {rng.randint(1, 3)}px solid {rng.choice(COLORS)}")
        elif kind == 6:
            declarations.append(f"border-radius: {rng.randint(0, 16)}px")
        elif kind == 7:
            declarations.append(f"display: {rng.choice(['flex', 'block', 'inline-flex', 'grid', 'none'])}")
        elif kind == 8:
            declarations.append(f"transition: {rng.choice(['opacity', 'transform', 'color'])} {rng.randint(1, 6) * 50}ms ease-in-out")
        else:
            declarations.append(f"box-shadow: 0 {rng.randint(0, 8)}px {rng.randint(0, 24)}px rgba(0, 0, 0, {rng.randint(5, 40) / 100:g})")
    body = ";\n  ".join(declarations)
    return f"{selector} {{\n  {body};\n}}\n"


def js_function(rng: random.Random, index: int) -> str:
    """Return one JS function in the style of a transpiled module."""
    noun = rng.choice(WORDS)
    other = rng.choice(WORDS)
    name = f"{rng.choice(['render', 'update', 'fetch', 'handle', 'format', 'validate'])}{noun.title()}{index}"
    lines = [f"function {name}(props, state) {{"]
    lines.append(f"  const {noun}Id = props.{noun}Id || state.current{other.title()}Id;")
    for _ in range(rng.randint(2, 6)):
        kind = rng.randrange(5)
        if kind == 0:
            lines.append(f"  if (!{noun}Id || state.{other}.length > {rng.randint(1, 500)}) {{\n    return null;\n  }}")
        elif kind == 1:
            lines.append(f"  const {other}{rng.randint(0, 99)} = state.{other}.filter((x) => x.{rng.choice(WORDS)} !== {rng.randint(0, 9999)});")
        elif kind == 2:
            lines.append(f"  el.setAttribute(\"data-{noun}\", String({noun}Id));")
        elif kind == 3:
            lines.append(f"  api.request(\"/api/{noun}/\" + {noun}Id + \"/{other}\", {{ method: \"{rng.choice(['GET', 'POST', 'PUT'])}\", timeout: {rng.randint(1, 30) * 1000} }});")
        else:
            lines.append(f"  console.debug(\"{name}: {other} updated\", {rng.randint(0, 1 << 20)});")
    lines.append(f"  return {{ id: {noun}Id, kind: \"{other}\", version: {rng.randint(1, 100)} }};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def build(target_bytes: int, header: str, make_part) -> bytes:
    """Append generated parts to `header` until the text reaches `target_bytes`, then cut it there."""
    parts = [header]
    size = len(header)
    index = 0
    while size < target_bytes:
        part = make_part(index)
        parts.append(part)
        size += len(part)
        index += 1
    return "".join(parts).encode()[:target_bytes]


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: make_docs.py DIR", file=sys.stderr)
        return 2
    out = Path(sys.argv[1])
    rng = random.Random(SEED)

    css = build(CSS_BYTES, "/* generated stylesheet for load tests */\n", lambda _: css_rule(rng))
    js = build(JS_BYTES, "\"use strict\";\n", lambda i: js_function(rng, i))
    line = b"ringfront benchmark document, 1 KiB of plain text.\n"
    text = (line * (TEXT_BYTES // len(line) + 1))[:TEXT_BYTES]

    (out / "app.css").write_bytes(css)
    (out / "app.js").write_bytes(js)
    (out / "1k.txt").write_bytes(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
