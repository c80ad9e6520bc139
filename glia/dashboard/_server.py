"""The dashboard's HTTP server: a runs page and a run page read from ``glia-runs/<id>/run.json``.

aiohttp is used because Glia already depends on it (no new package; it serves HTTP and SSE).
Safe by default: on 127.0.0.1 no token is needed; on any other host every request must carry the
token (``?token=``, ``Authorization: Bearer``, or the HttpOnly, SameSite=Strict cookie the server
sets on the first accepted request, so that links between pages work) or gets 401. Pages show
only what ``run.json`` holds, which never contains keys (the coordinator writes it with secret
seeds hidden).

Steering (``POST /runs/<id>/steer``, with ``steer`` given) sends a note, a pause, a resume, a
stop or a gate decision to the run's coordinator over the bus, with the origin ``dashboard
<client address>``. Besides the token, a POST must come from the dashboard's own pages: its
``Origin`` (or ``Referer``) must be this server and ``Sec-Fetch-Site``, when sent,
``same-origin``; another site's page cannot steer a run through a visitor's browser (CSRF).
"""

from __future__ import annotations

import difflib
import hmac
import html
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import anyio
import msgspec
from aiohttp import web

from glia._errors import InputError
from glia.bus import SteerMessage, steer_message
from glia.dashboard._cluster import Probe, cluster_page
from glia.dashboard._live import Live
from glia.report import RunRecord, load_record

__all__ = ["TokenRequired", "make_app"]

_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
_COOKIE = "glia_dashboard_token"
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class TokenRequired(InputError):
    """A host other than loopback was asked for without a token."""


def make_app(
    runs_dir: Path,
    *,
    host: str = "127.0.0.1",
    token: str | None = None,
    live: Live | None = None,
    probe: Probe | None = None,
    steer: Callable[[SteerMessage], Awaitable[None]] | None = None,
) -> web.Application:
    """The dashboard's aiohttp application over ``runs_dir`` (one folder per run).

    ``token`` is required when ``host`` is not loopback (the caller prints it once at start).
    With ``live`` (fed by :meth:`Live.follow` from the bus), runs in progress are listed too and
    their pages update over SSE (``/runs/<id>/events``) without a reload, and ``/cluster``
    shows the workers; ``probe`` (:func:`~glia.dashboard.nats_probe`) adds the queue's depth
    and the dead letters there. With ``steer`` (e.g. :meth:`glia.bus.NatsBus.publish_steer`),
    a live run's page has a note box, pause, resume and stop buttons and, at a gated run's
    gate, approve and pick controls.
    """
    if host not in _LOOPBACK and not token:
        raise TokenRequired(
            f"host {host!r} is not loopback: pass a token (or bind 127.0.0.1) "
            "so strangers cannot read or steer runs"
        )

    @web.middleware
    async def _auth(request: web.Request, handler: _Handler) -> web.StreamResponse:
        # the shipped script holds no data, and a <script src> carries no ?token=
        if token is None or request.path == "/static/live.js":
            return await handler(request)
        given = (
            request.query.get("token")
            or request.headers.get("Authorization", "").removeprefix("Bearer ")
            or request.cookies.get(_COOKIE, "")
        )
        # compare_digest: the time taken does not tell how much of a guess was right
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise web.HTTPUnauthorized(text="401: missing or wrong token")
        response = await handler(request)
        if request.cookies.get(_COOKIE) != token and not response.prepared:
            # the page's links carry no ?token=: the browser keeps it, for this site only and
            # out of scripts' reach
            response.set_cookie(_COOKIE, token, httponly=True, samesite="Strict", path="/")
        return response

    app = web.Application(middlewares=[_auth])
    if live is not None:

        async def _end_streams(app: web.Application) -> None:
            live.close()

        app.on_shutdown.append(_end_streams)

    async def runs(request: web.Request) -> web.StreamResponse:
        return await _runs_page(runs_dir, live)

    async def run(request: web.Request) -> web.StreamResponse:
        run_id = request.match_info["run_id"]
        if live is not None and run_id in live.runs:
            return _live_page(run_id, steering=steer is not None)
        return await _run_page(runs_dir, run_id)

    async def events(request: web.Request) -> web.StreamResponse:
        run_id = request.match_info["run_id"]
        if live is None or run_id not in live.runs:
            raise web.HTTPNotFound(text=f"run {run_id!r} is not live (start with --nats URL)")
        return await _sse(request, live, run_id)

    async def script(request: web.Request) -> web.StreamResponse:
        return web.Response(text=_SCRIPT.read_text(), content_type="text/javascript")

    async def cluster(request: web.Request) -> web.StreamResponse:
        return await cluster_page(live, probe)

    app.router.add_get("/cluster", cluster)
    app.router.add_get("/runs/{run_id}/events", events)
    app.router.add_get("/static/live.js", script)

    async def report(request: web.Request) -> web.StreamResponse:
        return await _report(runs_dir, request.match_info["run_id"])

    app.router.add_get("/", runs)
    app.router.add_get("/runs/{run_id}", run)
    app.router.add_get("/runs/{run_id}/report", report)

    async def trial(request: web.Request) -> web.StreamResponse:
        return await _trial_page(runs_dir, request.match_info["run_id"], request.match_info["n"])

    app.router.add_get("/runs/{run_id}/trials/{n}", trial)

    async def steering(request: web.Request) -> web.StreamResponse:
        run_id = request.match_info["run_id"]
        _same_origin(request)
        if steer is None or live is None:
            raise web.HTTPNotFound(text="steering needs the bus: start with --nats URL")
        if run_id not in live.runs:
            raise web.HTTPNotFound(text=f"run {run_id!r} is not live: it cannot be steered")
        form = await request.post()
        try:
            msg = steer_message(
                run_id, str(form.get("action", "")), text=str(form.get("text", "")),
                context=_int(form.get("context"), "context"),
                trial=_int(form.get("trial"), "trial"),
                origin=f"dashboard {request.remote or 'unknown'}",
            )  # fmt: skip
        except InputError as e:
            raise web.HTTPBadRequest(text=f"400: {e}") from None
        await steer(msg)
        return web.json_response({"sent": str(form.get("action")), "id": msg.id})

    app.router.add_post("/runs/{run_id}/steer", steering)
    return app


def _int(value: object, what: str) -> int | None:
    if value is None or str(value).strip() == "":
        return None
    text = str(value).strip()
    if not text.isdigit():
        raise InputError(f"{what} {text!r} is not a number: give a whole number from 0")
    return int(text)


def _same_origin(request: web.Request) -> None:
    """Refuse (403) a request that a page of another site made a browser send."""
    site = request.headers.get("Sec-Fetch-Site")
    source = request.headers.get("Origin") or request.headers.get("Referer") or ""
    parts = urlsplit(source)
    if (site is not None and site != "same-origin") or parts.netloc != request.host:
        raise web.HTTPForbidden(text="403: steering is only accepted from the dashboard's pages")


def _records(runs_dir: Path) -> list[RunRecord]:
    out = []
    for path in sorted(runs_dir.glob("*/run.json")):
        try:
            out.append(load_record(path.read_bytes()))
        except (OSError, msgspec.DecodeError):
            continue  # a run still being written or not a run: the page lists the rest
    return out


def _page(title: str, body: str) -> web.Response:
    t = html.escape(title)
    doc = f"<!doctype html><meta charset=utf-8><title>{t}</title><h1>{t}</h1>{body}"
    return web.Response(text=doc, content_type="text/html")


async def _runs_page(runs_dir: Path, live: Live | None) -> web.Response:
    records = _records(runs_dir)
    rows = "".join(
        f"<tr><td><a href='runs/{html.escape(r.run_id)}'>{html.escape(r.run_id)}</a></td>"
        f"<td>{html.escape(r.task)}</td><td>{html.escape(r.status)}</td><td>{len(r.trials)}</td></tr>"
        for r in records
        if live is None or r.run_id not in live.runs
    )
    # runs the bus knows: the live state is newer than any run.json written along the way
    rows += "".join(
        f"<tr><td><a href='runs/{html.escape(rid)}'>{html.escape(rid)}</a></td>"
        f"<td></td><td>{html.escape(v.status)}</td><td>{v.trials}</td></tr>"
        for rid, v in sorted((live.runs if live else {}).items())
    )
    table = f"<table><tr><th>run<th>task<th>status<th>trials</tr>{rows}</table>"
    return _page("Glia runs", f"<p><a href='cluster'>cluster</a></p>{table}")


def _known(runs_dir: Path, run_id: str) -> None:
    # only names that are folders of runs_dir: '..' or '/' can not reach other files
    if run_id not in {p.parent.name for p in runs_dir.glob("*/run.json")}:
        raise web.HTTPNotFound(text=f"no run {run_id!r} in {runs_dir}")


async def _report(runs_dir: Path, run_id: str) -> web.StreamResponse:
    _known(runs_dir, run_id)
    path = runs_dir / run_id / "report.html"
    if not path.is_file():
        raise web.HTTPNotFound(text=f"run {run_id!r} has no report yet")
    return web.FileResponse(path)


async def _run_page(runs_dir: Path, run_id: str) -> web.Response:
    _known(runs_dir, run_id)
    r = load_record((runs_dir / run_id / "run.json").read_bytes())

    def num(x: float | None) -> str:
        return "" if x is None else f"{x:.4g}"

    rows = "".join(
        f"<tr><td><a href='/runs/{html.escape(run_id)}/trials/{t.index}'>{t.index}</a></td>"
        f"<td>{t.context}</td><td>{num(t.score)}</td><td>{num(t.mean_e2e_s)}</td>"
        f"<td>{num(t.summary.p99_e2e_s if t.summary else None)}</td>"
        f"<td>{html.escape(t.failure or '')}</td></tr>"
        for t in r.trials
    )
    log = "".join(
        f"<li>[{e.context}] {html.escape(e.role)}: {html.escape(e.text)}</li>" for e in r.log
    )
    report = (
        f"<p><a href='/runs/{html.escape(run_id)}/report'>report</a></p>" if r.report_path else ""
    )
    body = (
        f"<p>status {html.escape(r.status)} {html.escape(r.stop_reason)}; "
        f"best trial {r.best_trial}; "
        f"cost ${r.cost_usd:.4f}</p>{report}{_score_chart(r)}"
        "<table><tr><th>trial<th>context<th>score<th>mean E2E (s)<th>p99 E2E (s)<th>failure</tr>"
        f"{rows}</table>"
        f"<h2>Research log</h2><ul>{log}</ul>"
    )
    return _page(f"Run {run_id}", body)


def _code(runs_dir: Path, run_id: str, design_path: str) -> str:
    run_dir = (runs_dir / run_id).resolve()
    path = (run_dir / design_path).resolve()
    # run.json names the file; only files inside the run's folder are shown
    if not design_path or not path.is_relative_to(run_dir) or not path.is_file():
        return ""
    return path.read_text(encoding="utf-8", errors="replace")


async def _trial_page(runs_dir: Path, run_id: str, n: str) -> web.Response:
    """A trial's design code and its diff against the best trial before it (by score)."""
    _known(runs_dir, run_id)
    r = load_record((runs_dir / run_id / "run.json").read_bytes())
    t = next((t for t in r.trials if str(t.index) == n), None)
    if t is None:
        raise web.HTTPNotFound(text=f"run {run_id!r} has no trial {n!r}")
    earlier = [e for e in r.trials if e.index < t.index and e.score is not None]
    best = max(earlier, key=lambda e: e.score or 0.0, default=None)
    code = _code(runs_dir, run_id, t.design_path)
    if best is None:
        diff = "(no earlier scored trial)"
    else:
        lines = difflib.unified_diff(
            _code(runs_dir, run_id, best.design_path).splitlines(),
            code.splitlines(),
            f"trial {best.index} (best before)",
            f"trial {t.index}",
            lineterm="",
        )
        diff = "\n".join(lines)
    body = (
        f"<p>{html.escape(t.note)}</p><h2>Diff</h2><pre class=diff>{html.escape(diff)}</pre>"
        f"<h2>Code</h2><pre>{html.escape(code)}</pre>"
    )
    return _page(f"Run {run_id} trial {t.index}", body)


_SCRIPT = Path(__file__).with_name("static") / "live.js"


_STEER = (
    "<form class=steer data-steer='/runs/{rid}/steer'>"
    "<textarea name=text rows=2 cols=60 aria-label='note to the supervisor' placeholder="
    "'A note to the supervisor, shown at its next turn (e.g. the long prompts starve; look at "
    "p99)'></textarea><br><button name=action value=note>send note</button> "
    "<button name=action value=pause>pause</button> "
    "<button name=action value=resume>resume</button> "
    "<button name=action value=stop>stop</button>"
    "<span class=gate hidden> awaiting approval: "
    "<button name=action value=approve>approve the chosen design</button> or trial "
    "<input name=trial type=number min=1 size=4 aria-label=trial> "
    "<button name=action value=pick>pick</button></span> "
    "<output class=steered></output></form>"
)


def _live_page(run_id: str, *, steering: bool = False) -> web.Response:
    """A run in progress: an empty skeleton that ``live.js`` fills from the run's SSE stream
    (which replays the run from its start, so nothing is rendered twice); with ``steering``,
    the steering controls."""
    rid = html.escape(run_id)
    body = (
        f"<div data-live='/runs/{rid}/events'><p class=status>status running</p>"
        + (_STEER.format(rid=rid) if steering else "")
        + "<svg class=scores width=480 height=160 viewBox='0 0 480 160' role=img "
        "aria-label='score by trial'></svg>"
        "<table class=trials><tr><th>trial<th>context<th>score<th>mean E2E (s)<th>p99 E2E (s)"
        "<th>failure</tr></table><h2>Research log</h2><ul class=log></ul></div>"
        "<script src='/static/live.js'></script>"
    )
    return _page(f"Run {run_id}", body)


async def _sse(request: web.Request, live: Live, topic: str) -> web.StreamResponse:
    """Server-sent events: one ``data:`` line per event, each a JSON message of the bus.

    A comment line every :data:`_KEEPALIVE_S` without events finds a closed tab (the write
    fails), so a tab that went away holds no handler for longer than that.
    """
    resp = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await resp.prepare(request)
    async with live.watch(topic) as events:
        try:
            while True:
                data = None
                with anyio.move_on_after(_KEEPALIVE_S):
                    data = await events.receive()
                await resp.write(b": keepalive\n\n" if data is None else b"data: " + data + b"\n\n")
        except (anyio.EndOfStream, ConnectionResetError):
            pass  # the server is shutting down, or the tab is gone
    return resp


_KEEPALIVE_S = 15.0


_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def _score_chart(r: RunRecord, width: int = 480, height: int = 160) -> str:
    """Score by trial, one line per context, as inline SVG (no script, no asset to ship)."""
    scored = [t for t in r.trials if t.score is not None]
    if not scored:
        return ""
    top = max(t.score or 0.0 for t in scored) or 1.0
    last = max(t.index for t in r.trials) or 1
    lines = []
    for ctx in sorted({t.context for t in scored}):
        pts = " ".join(
            f"{t.index / last * width:.1f},{height - (t.score or 0.0) / top * height:.1f}"
            for t in scored
            if t.context == ctx
        )
        colour = _COLOURS[ctx % len(_COLOURS)]
        lines.append(
            f"<polyline data-context='{ctx}' points='{pts}' fill='none' stroke='{colour}'/>"
        )
    return (
        f"<svg class=scores width={width} height={height} viewBox='0 0 {width} {height}' "
        f"role=img aria-label='score by trial'>{''.join(lines)}</svg>"
    )
