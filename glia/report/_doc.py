"""A tiny document model the report is built in, and its Markdown and HTML renderings.

The report is built once as a list of blocks (headings, paragraphs, tables, code, quotes,
images) and written twice, so the Markdown and the HTML never disagree. All text is escaped for
the format it lands in: the run's text (task, notes, agents' messages) is not trusted markup.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = [
    "Block",
    "Code",
    "Heading",
    "Image",
    "Inline",
    "Items",
    "Para",
    "Quote",
    "Span",
    "Table",
    "code",
    "em",
    "para",
    "strong",
    "to_html",
    "to_markdown",
]


# -- the intermediate document ------------------------------------------------------------------
@dataclass(frozen=True)
class Span:
    """Inline text with a style; plain strings are unstyled text."""

    text: str
    kind: Literal["code", "strong", "em"]


Inline = str | Span


@dataclass(frozen=True)
class Heading:
    """A section title (level 1 is the page title)."""

    level: int
    text: str


@dataclass(frozen=True)
class Para:
    """A paragraph of inline parts (on one line: newlines in text become spaces)."""

    parts: tuple[Inline, ...]


@dataclass(frozen=True)
class Items:
    """A bulleted list; each item is a line of inline parts."""

    items: tuple[tuple[Inline, ...], ...]


@dataclass(frozen=True)
class Table:
    """A table with a header row; cells are single inline parts."""

    header: tuple[str, ...]
    rows: tuple[tuple[Inline, ...], ...]
    numeric: tuple[bool, ...] = ()
    """Right-align these columns."""


@dataclass(frozen=True)
class Code:
    """A block of source code, shown verbatim."""

    text: str
    lang: str = ""


@dataclass(frozen=True)
class Quote:
    """Someone's message, kept as written (the agents write Markdown)."""

    label: tuple[Inline, ...]
    text: str


@dataclass(frozen=True)
class Image:
    """A PNG figure: linked from the Markdown, embedded in the HTML."""

    path: str
    """Relative to the run directory (where the reports are)."""
    alt: str


Block = Heading | Para | Items | Table | Code | Quote | Image


def para(*parts: Inline) -> Para:
    """A paragraph of ``parts``."""
    return Para(parts)


def code(text: str) -> Span:
    """Inline code."""
    return Span(text, "code")


def strong(text: str) -> Span:
    """Bold text."""
    return Span(text, "strong")


def em(text: str) -> Span:
    """Italic text."""
    return Span(text, "em")


# -- Markdown -----------------------------------------------------------------------------------
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~])")
_CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`).*?(?<!`)\1(?!`)")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def _md_text(s: str) -> str:
    # inline text never spans lines: a newline could start a heading or list in the middle
    return _MD_SPECIAL.sub(r"\\\1", " ".join(s.split("\n")))


def _md_code_span(s: str) -> str:
    s = " ".join(s.split("\n"))
    ticks = "`" * (1 + max((len(m) for m in re.findall(r"`+", s)), default=0))
    pad = " " if s.startswith("`") or s.endswith("`") else ""
    return f"{ticks}{pad}{s}{pad}{ticks}"


def _md_inline(parts: Iterable[Inline], cell: bool = False) -> str:
    out = []
    for p in parts:
        if isinstance(p, str):
            out.append(_md_text(p))
        elif p.kind == "code":
            span = _md_code_span(p.text)
            # GitHub splits table cells at every unescaped pipe, even inside code spans
            out.append(span.replace("|", "\\|") if cell else span)
        else:
            mark = "**" if p.kind == "strong" else "*"
            out.append(f"{mark}{_md_text(p.text)}{mark}")
    return "".join(out)


def _md_message(text: str) -> Iterator[str]:
    """The lines of an agent's Markdown, with raw HTML neutralised outside code.

    An agent's ``<!--`` or ``<details>`` would otherwise hide or swallow the rest of the report.
    """
    fence = ""
    for line in text.splitlines():
        m = _FENCE.match(line)
        if fence:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence):
                fence = ""
            yield line
        elif m:
            fence = m.group(1)
            yield line
        else:
            pieces, last = [], 0
            for span in _CODE_SPAN.finditer(line):
                pieces += [line[last : span.start()].replace("<", "\\<"), span.group(0)]
                last = span.end()
            pieces.append(line[last:].replace("<", "\\<"))
            yield "".join(pieces)


def to_markdown(blocks: Sequence[Block]) -> str:
    """Render the document as CommonMark (with GitHub tables)."""
    out: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append(f"{'#' * b.level} {_md_text(b.text)}")
        elif isinstance(b, Para):
            out.append(_md_inline(b.parts))
        elif isinstance(b, Items):
            out.append("\n".join(f"- {_md_inline(i)}" for i in b.items))
        elif isinstance(b, Table):
            align = [b.numeric[i] if i < len(b.numeric) else False for i in range(len(b.header))]
            lines = [
                "| " + " | ".join(_md_text(h) for h in b.header) + " |",
                "|" + "|".join("---:" if a else "---" for a in align) + "|",
            ]
            lines += [
                "| " + " | ".join(_md_inline([c], cell=True) for c in row) + " |" for row in b.rows
            ]
            out.append("\n".join(lines))
        elif isinstance(b, Code):
            fence = "`" * max(3, 1 + max((len(m) for m in re.findall(r"`+", b.text)), default=0))
            out.append(f"{fence}{b.lang}\n{b.text.rstrip()}\n{fence}")
        elif isinstance(b, Quote):
            body = [f"> {_md_inline(b.label)}", ">"]
            body += [f"> {line}" if line.strip() else ">" for line in _md_message(b.text)]
            out.append("\n".join(body))
        else:
            out.append(f"![{_md_text(b.alt)}]({b.path})")
    return "\n\n".join(out) + "\n"


# -- HTML ---------------------------------------------------------------------------------------
_CSS = """
body { font: 15px/1.5 system-ui, sans-serif; color: #222; margin: 0; background: #fafafa; }
main { max-width: 1100px; margin: 0 auto; padding: 1.5em 2em 4em; background: #fff; }
h1 { border-bottom: 2px solid #ddd; padding-bottom: .3em; }
h2 { border-bottom: 1px solid #eee; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 14px; }
th, td { border: 1px solid #ddd; padding: .3em .7em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
code { font: 13px ui-monospace, monospace; background: #f3f3f3; padding: 0 .2em; }
pre { background: #f6f8fa; padding: 1em; overflow-x: auto; border-radius: 4px; }
pre code { background: none; padding: 0; }
blockquote { margin: 1em 0; padding: .5em 1em; border-left: 4px solid #c8d3e0;
  background: #f7f9fc; }
blockquote .who { color: #444; font-size: 13px; margin-bottom: .3em; }
blockquote .text { white-space: pre-wrap; font-size: 14px; }
figure { margin: 1em 0; } figure img { max-width: 100%; }
figcaption { color: #555; font-size: 13px; }
""".strip()


def _html_inline(parts: Iterable[Inline]) -> str:
    out = []
    for p in parts:
        if isinstance(p, str):
            out.append(html.escape(p))
        else:
            tag = {"code": "code", "strong": "strong", "em": "em"}[p.kind]
            out.append(f"<{tag}>{html.escape(p.text)}</{tag}>")
    return "".join(out)


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def to_html(blocks: Sequence[Block], title: str, base: Path) -> str:
    """Render the document as one HTML file; images under ``base`` are embedded as data URIs."""
    out: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append(f"<h{b.level}>{html.escape(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            out.append(f"<p>{_html_inline(b.parts)}</p>")
        elif isinstance(b, Items):
            lis = "".join(f"<li>{_html_inline(i)}</li>" for i in b.items)
            out.append(f"<ul>{lis}</ul>")
        elif isinstance(b, Table):

            def cls(i: int, t: Table = b) -> str:
                return ' class="num"' if i < len(t.numeric) and t.numeric[i] else ""

            head = "".join(f"<th{cls(i)}>{html.escape(h)}</th>" for i, h in enumerate(b.header))
            rows = "".join(
                "<tr>" + "".join(
                    f"<td{cls(i)}>{_html_inline([c])}</td>" for i, c in enumerate(row)
                ) + "</tr>"
                for row in b.rows
            )  # fmt: skip
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif isinstance(b, Code):
            lang = f' class="language-{html.escape(b.lang)}"' if b.lang else ""
            out.append(f"<pre><code{lang}>{html.escape(b.text.rstrip())}</code></pre>")
        elif isinstance(b, Quote):
            out.append(
                f'<blockquote><div class="who">{_html_inline(b.label)}</div>'
                f'<div class="text">{html.escape(b.text.strip())}</div></blockquote>'
            )
        else:
            alt = html.escape(b.alt)
            out.append(
                f'<figure><img src="{_data_uri(base / b.path)}" alt="{alt}">'
                f"<figcaption>{alt}</figcaption></figure>"
            )
    body = "\n".join(out)
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>\n{_CSS}\n</style>\n</head>\n"
        f"<body><main>\n{body}\n</main></body>\n</html>\n"
    )
