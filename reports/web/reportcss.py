"""The report renderer's stylesheet, scoped to the part of our page that shows a report.

The HTML renderer puts its CSS in an inline <style>, which our CSP refuses, and its rules (body,
table, th...) would restyle the whole page. So the same stylesheet is served as a file with every
selector prefixed by the container's selector, `body` becoming the container itself; print-only
rules (@page, @font-face) are dropped. The renderer stays the one place that styles a report.
"""

from __future__ import annotations

import re

import jinja2

_COMMENT = re.compile(r"/\*.*?\*/", re.S)
_DROPPED_AT_RULES = ("@page", "@font-face", "@import", "@charset")


def _block_end(css: str, opening: int) -> int:
    """Index just after the brace closing the block that opens at `opening`."""
    depth = 0
    for index in range(opening, len(css)):
        if css[index] == "{":
            depth += 1
        elif css[index] == "}":
            depth -= 1
            if depth == 0:
                return index + 1
    return len(css)


def _prefix(selector: str, scope: str) -> str:
    selector = selector.strip()
    if selector in ("html", "body", ":root"):
        return scope
    for root in ("html ", "body "):
        if selector.startswith(root):
            return f"{scope} {selector[len(root):].strip()}"
    return f"{scope} {selector}"


def scoped(css: str, scope: str) -> str:
    """`css` with every rule limited to elements inside `scope` (a simple selector like `.rendered`)."""
    css = _COMMENT.sub("", css)
    out: list[str] = []
    position = 0
    while True:
        opening = css.find("{", position)
        if opening < 0:
            break
        head = css[position:opening].strip()
        end = _block_end(css, opening)
        body = css[opening + 1 : end - 1]
        if head.startswith("@"):
            if head.startswith("@media") or head.startswith("@supports"):
                out.append(f"{head} {{\n{scoped(body, scope)}}}")
            elif not head.startswith(_DROPPED_AT_RULES):
                out.append(f"{head} {{{body}}}")
        elif head:
            selectors = ", ".join(_prefix(part, scope) for part in head.split(","))
            out.append(f"{selectors} {{{body.strip()} }}")
        position = end
    return "\n".join(out) + "\n"


def report_css(scope: str = ".rendered") -> str:
    """The renderer's report.css, rendered (its print-only placeholders left empty) and scoped."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("reports.render", "templates"), autoescape=False)  # noqa: S701 - CSS, not HTML
    return scoped(env.get_template("report.css").render(page_label='""', font_css=""), scope)
