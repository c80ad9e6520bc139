"""The offline designer: a deterministic, non-LLM researcher and supervisor.

They play the two agents through pydantic-ai's ``FunctionModel``, so ``glia design`` runs end
to end (the same actors, tools, bus, workers, checkpoints and report) with no API key and no
network. They are honestly labelled: no language model is involved.

The researcher searches the task's catalogue (:mod:`glia.policies._mechanisms` for routers,
:mod:`glia.policies._task_mechanisms` for replica schedulers and autoscalers) greedily from the
workspace's example: it writes each candidate as a real design file, simulates it, and keeps a
change only if the simulation says it helped. Which change it tries next depends on what it has
measured — an analysis of the first run's per-request table (are requests being preempted and
recomputed? is time lost queueing?), which mechanisms have helped so far (ordering only matters
once requests are held back), and the supervisor's push to combine ideas. Everything it knows
is read back from the conversation (tool results), so a resumed run continues the same search.

Why one module of this size: reading the conversation, choosing the next experiment and
writing the reports are one deterministic policy, for the researcher and the supervisor.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

import msgspec
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

from glia.policies import Mechanisms as RouterMechanisms
from glia.policies import ScalerMechanisms, SchedulerMechanisms
from glia.report import Trial
from glia.tasks import DEFAULT_TASK, Task

from ._answers import read_answer
from ._bench import trial_cost
from ._supervisor import END, HUMAN_NOTES

__all__ = [
    "OFFLINE_LABEL",
    "RELAYED",
    "OfflineModel",
    "Seat",
    "SeatedModel",
    "focus_of",
    "offline_researcher",
    "offline_supervisor",
]

OFFLINE_LABEL = "offline (deterministic non-LLM designer)"
_MARK = "# mechanisms: "
_PER_TURN = 3
"""Simulations per turn before reporting to the supervisor."""
_MARGIN = 0.1
"""An autoscaler whose worst search seed comes closer than this to the SLO (as a fraction of
it) is on the edge: held-out days may miss it, so it is preferred only if nothing safer is."""

Spec = RouterMechanisms | SchedulerMechanisms | ScalerMechanisms
_SLACKS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
"""Load guards of prefix affinity: extra requests in flight tolerated for a hit."""
_INDEX = (1, 2, 3, 4, 5, 6, 8, 12, 16)
"""Prefixes a tracking router remembers per replica (0, all, is tried first)."""

ANALYSIS = """\
import csv, glob
import numpy as np
rows = list(csv.DictReader(open(sorted(glob.glob("{pattern}"))[0])))
col = lambda k: np.array([float(r[k]) for r in rows])
e2e, delay = col("request_e2e_time"), col("request_scheduling_delay")
restarts = col("request_num_restarts")
prompt = col("request_num_prefill_tokens")
hit = restarts > 0
print(f"requests={{len(rows)}}")
print(f"restarted_fraction={{hit.mean():.4f}}")
print(f"restarted_e2e_ratio={{(e2e[hit].mean() / e2e[~hit].mean()) if hit.any() else 1.0:.3f}}")
print(f"queueing_share={{delay.sum() / e2e.sum():.4f}}")
print(f"long_prompt_e2e_ratio={{e2e[prompt > np.percentile(prompt, 90)].mean() / e2e.mean():.3f}}")
"""

COMPARE = """\
import csv
import numpy as np
def load(path):
    rows = list(csv.DictReader(open(path)))
    return {{k: np.array([float(r[k]) for r in rows]) for k in rows[0]}}
a, b = load("{first}"), load("{best}")
short = a["request_num_prefill_tokens"] <= np.median(a["request_num_prefill_tokens"])
for name, t in (("first", a), ("best", b)):
    e2e = t["request_e2e_time"]
    print(f"{{name}}_restarted_fraction={{(t['request_num_restarts'] > 0).mean():.4f}}")
    print(f"{{name}}_short_prompt_e2e_s={{e2e[short].mean():.2f}}")
    print(f"{{name}}_long_prompt_e2e_s={{e2e[~short].mean():.2f}}")
    print(f"{{name}}_mean_sched_delay_s={{t['request_scheduling_delay'].mean():.2f}}")
"""

_WHY = {
    "admission": (
        "requests are being preempted and recomputed: hold requests at the router until a "
        "replica has KV head-room for their projected size"
    ),
    "score": "balance a different measure of load across replicas",
    "order": (
        "requests now wait in the global queue, so the order they are released in matters: "
        "release short prompts first so they are not stuck behind long ones"
    ),
    "decode_ratio": "tune how much KV growth (output tokens per prompt token) we project",
    "headroom": "tune how much KV space admission keeps free",
    "hold": "let smaller requests pass a request that fits nowhere instead of holding the queue",
    "combine": "combine what worked separately, as the supervisor suggested",
    "affinity": (
        "replicas cache prompt prefixes: send a request where most of its prompt is "
        "cached, unless that replica is much busier"
    ),
    "slack": (
        "tune the load guard of prefix affinity: how much busier the replica holding the "
        "prefix may be (a miss recomputes the whole prefix; an imbalance queues)"
    ),
    "index": (
        "tune how many prefixes the router believes each replica still caches (what it sent "
        "there, least recent first out): a prefix the replica evicted is a miss, not a hit"
    ),
    "sched-order": (
        "long prompts at the head of a replica's queue hold short ones back: admit the "
        "shortest prompt first, letting requests that fit pass one that does not"
    ),
    "aging": "tune how fast waiting requests gain priority (mean against tail: starvation)",
    "starve": (
        "shortest-first starves long prompts and the tail weighs in the objective: let any "
        "request that has waited too long go first, leaving everyone else's order alone"
    ),
    "backfill": "let requests that fit pass one that does not (or not)",
    "deadline": (
        "shortest-first starves long prompts and the tail weighs in the objective: release by "
        "a deadline that grows with the log of the prompt, size-aware but fair"
    ),
    "token_budget": "tune the tokens per iteration: smaller chunks stall decodes less",
    "victim": "preempt the request holding the most KV blocks, to preempt fewer requests",
    "target": "tune the load per replica: fewer replicas, as long as the SLO holds",
    "window": "tune how long the load is averaged over (noise against reaction time)",
    "boost": "over-provision on the way up, since new replicas take a cold start to arrive",
    "down_delay": "tune how long a lower count must be wanted before draining a replica",
    "trend": "scale for the load expected one cold start ahead, from the arrival rate's trend",
    "interval": "call the autoscaler more or less often",
}


RELAYED = "A person watching the run says:"
"""How the offline supervisor passes a person's note on to the researcher (one per line)."""

_TAIL = ("starve", "deadline", "aging")
_FOCUS: dict[str, tuple[str, ...]] = {
    **{k: (k,) for k in _WHY},
    **{k: _TAIL for k in ("p99", "p95", "p90", "tail", "starv", "long prompt", "fair")},
    **{k: ("affinity",) for k in ("prefix", "cache", "affinity")},
    **{k: ("admission", "headroom", "decode_ratio") for k in ("preempt", "admission", "kv")},
    **{k: ("order", "sched-order") for k in ("shortest", "order")},
    **{k: ("score",) for k in ("balance", "load score")},
    **{k: ("token_budget",) for k in ("chunk", "token budget")},
    **{k: ("target", "boost", "trend") for k in ("scale up", "cold start", "slo")},
}
"""A word in a person's note -> the kinds of change (keys of ``_WHY``) it points the
researcher to. Deterministic: the same note always steers the same way."""


def focus_of(note: str) -> frozenset[str]:
    """The kinds of change a person's ``note`` asks for (see ``_FOCUS``); empty if none."""
    text = note.lower().replace("_", " ").replace("-", " ")
    return frozenset(kind for word, kinds in _FOCUS.items()
                     if word.replace("_", " ").replace("-", " ") in text
                     for kind in kinds)  # fmt: skip


# -- reading the conversation ------------------------------------------------------------------
@dataclass
class _Trial:
    index: int
    path: str
    spec: Spec | None
    value: float | None
    """The objective (mean E2E for routing, the task's cost otherwise; None: failed)."""
    csv_paths: list[str]
    margin: float | None = None
    """Autoscaling: how far the worst seed stayed from the SLO (fraction; negative: missed)."""

    @property
    def edgy(self) -> bool:
        return self.margin is not None and self.margin < _MARGIN


@dataclass
class _State:
    """What the researcher knows, read back from the conversation."""

    calls: list[ToolCallPart] = field(default_factory=list)
    returns: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    trials: list[_Trial] = field(default_factory=list)
    analysis: dict[str, float] = field(default_factory=dict)
    why: bool = False
    """The supervisor asked what made the best design work (and it is not answered yet)."""
    turn_trials: int = 0
    hint: int | None = None
    """A trial the supervisor asked to combine with the current best."""
    left: int | None = None
    prefix: bool = False
    """The cluster caches prompt prefixes (the simulations say so)."""
    scraped: bool = False
    """The router sees scraped metrics: replicas' caches cannot be read (the simulations say
    so), so prefix affinity tracks what the router sent where."""
    context: int = 0
    """Which of several parallel contexts this is (0-based, from the first prompt)."""
    task: Task = DEFAULT_TASK
    """What is designed (from the example file in the workspace)."""
    focus: frozenset[str] = frozenset()
    """Kinds of change people's notes asked for (relayed by the supervisor): tried first."""

    @property
    def label(self) -> str:
        return "mean E2E" if self.task.cost_is_latency else "cost"

    @property
    def unit(self) -> str:
        return " s" if self.task.cost_is_latency else ""

    @property
    def last(self) -> ToolCallPart | None:
        return self.calls[-1] if self.calls else None

    def evaluated(self) -> dict[Spec, float | None]:
        return {t.spec: t.value for t in self.trials if t.spec is not None}

    def best(self) -> _Trial | None:
        ok = [t for t in self.trials if t.value is not None and t.spec is not None]
        return min(ok, key=lambda t: (t.edgy, t.value or 0.0, t.index)) if ok else None


def _content(part: ToolReturnPart) -> Any:
    c = part.content
    if isinstance(c, str):
        try:
            return json.loads(c)
        except ValueError:
            return c
    return c


def _read(messages: list[ModelMessage], seat: Seat) -> _State:
    st = _State(context=seat.context, task=seat.task)
    turn_start = 0
    for msg in messages:
        if isinstance(msg, ModelResponse):
            st.calls += [p for p in msg.parts if isinstance(p, ToolCallPart)]
            continue
        assert isinstance(msg, ModelRequest)
        for part in msg.parts:
            if isinstance(part, UserPromptPart):
                turn_start = len(st.calls)  # a new turn: the supervisor (or the brief) spoke
                text = part.content if isinstance(part.content, str) else ""
                st.why = "which requests gained" in text.lower() or "explain" in text.lower()
                m = re.search(r"[Rr]ecall trial (\d+)", text)
                st.hint = int(m.group(1)) if m and "combine" in text else None
                for line in text.splitlines():
                    if line.startswith(RELAYED):
                        st.focus |= focus_of(line[len(RELAYED) :])
            elif isinstance(part, ToolReturnPart):
                st.returns[part.tool_call_id] = _content(part)
    for i, call in enumerate(st.calls):
        args = call.args_as_dict()
        out = st.returns.get(call.tool_call_id)
        if call.tool_name == "write_file":
            st.files[args["path"]] = args["content"]
        elif call.tool_name == "run_analysis" and isinstance(out, str):
            st.why = st.why and i < turn_start
            for key, value in re.findall(r"^(\w+)=([-\d.eE+]+)$", out, re.M):
                st.analysis[key] = float(value)
        elif call.tool_name == "read_file" and isinstance(out, str) and _MARK in out:
            st.files[args["path"]] = out
        elif call.tool_name == "run_simulation" and (answer := read_answer(out)) is not None:
            st.turn_trials += i >= turn_start
            st.left = answer.simulations_left
            st.prefix = st.prefix or answer.prefix_caching
            st.scraped = st.scraped or answer.metrics_scraped
            if answer.trial is not None:
                src = st.files.get(args["design_path"], "")
                st.trials.append(
                    _Trial(
                        index=answer.trial,
                        path=args["design_path"],
                        spec=_spec(src, st.task),
                        value=answer.value,
                        csv_paths=answer.csv_paths or [],
                        margin=answer.slo_margin,
                    )
                )
    return st


def _spec(source: str, task: Task) -> Spec | None:
    for line in source.splitlines():
        if line.startswith(_MARK):
            spec: Spec = msgspec.json.decode(line[len(_MARK) :], type=task.mechanisms)
            return spec
    return None


# -- choosing the next experiment --------------------------------------------------------------
def _neighbours(value: float, grid: tuple[float, ...]) -> list[float]:
    i = min(range(len(grid)), key=lambda k: abs(grid[k] - value))
    return [grid[k] for k in (i - 1, i + 1) if 0 <= k < len(grid)]


def _moves(b: Spec, st: _State) -> Iterator[tuple[str, Spec]]:
    """Changes to the best design so far, most promising first given the evidence."""
    if isinstance(b, SchedulerMechanisms):
        yield from _scheduler_moves(b, st.focus)
        return
    if isinstance(b, ScalerMechanisms):
        yield from _scaler_moves(b)
        return
    r = msgspec.structs.replace
    if st.hint is not None:
        other = next((t.spec for t in st.trials if t.index == st.hint and t.spec), None)
        if other is not None:
            yield "combine", r(b, **{
                k: getattr(other, k) for k in type(b).__struct_fields__
                if getattr(other, k) != getattr(type(b)(), k)
            })  # fmt: skip
    asked_tail = bool(st.focus & {"starve", "deadline"})  # a person pointed at the tail
    if st.prefix or "affinity" in st.focus:  # a shared prefix is cheaper where it is cached
        if b.affinity == 0:
            yield "affinity", r(b, affinity=0.3, slack=4, track_prefixes=st.scraped)
        else:
            # The load guard first: how much busier the replica with the prefix may be.
            for k in _neighbours(b.slack, _SLACKS):
                yield "slack", r(b, slack=int(k))
            if b.track_prefixes:  # how many prefixes the router believes a replica holds
                near = (8, 4) if b.index_prefixes == 0 else _neighbours(b.index_prefixes, _INDEX)
                for k in near:
                    yield "index", r(b, index_prefixes=int(k))
            for v in _neighbours(b.affinity, (0.1, 0.3, 0.5, 0.7)):
                yield "affinity", r(b, affinity=v)
    preempted = st.analysis.get("restarted_fraction", 0.0) > 0.01
    if not b.admission:
        admit = r(b, score="kv", admission=True)
        if asked_tail:  # hold requests at the router, release short ones first, bound waits
            yield "starve", r(admit, order="shortest-prompt", starve_s=120.0)
        if preempted:
            yield "admission", admit
        yield "score", r(b, score="kv")
        yield "score", r(b, score="queued")
        yield "admission", admit
        yield "order", r(b, order="shortest-prompt")
        return
    tail = not st.task.cost_is_latency or asked_tail  # the objective (or a person) weighs it
    if b.order == "arrival":
        if tail:  # shortest-first starves long prompts: size-aware deadlines keep it fair
            yield "deadline", r(b, order="shortest-prompt", deadline_s=30.0)
        yield "order", r(b, order="shortest-prompt")
    elif tail:
        if b.deadline_s == 0 and b.starve_s == 0:
            yield "deadline", r(b, deadline_s=30.0)
            yield "starve", r(b, starve_s=120.0)
        elif b.deadline_s > 0:
            for v in _neighbours(b.deadline_s, (5.0, 10.0, 20.0, 30.0, 40.0, 60.0, 100.0)):
                yield "deadline", r(b, deadline_s=v)
        else:
            for v in _neighbours(b.starve_s, (30.0, 60.0, 120.0, 240.0, 480.0)):
                yield "starve", r(b, starve_s=v)
    for v in _neighbours(b.decode_ratio, (0.0, 0.3, 0.6, 1.0, 1.5)):
        yield "decode_ratio", r(b, decode_ratio=v)
    for v in _neighbours(b.headroom, (0.0, 0.01, 0.02, 0.03, 0.05, 0.1, 0.15)):
        yield "headroom", r(b, headroom=v)
    yield "hold", r(b, hold=not b.hold)
    for s in ("outstanding", "queued", "kv"):
        yield "score", r(b, score=s)
    if b.order == "shortest-prompt":
        yield "order", r(b, order="arrival")


def _scheduler_moves(
    b: SchedulerMechanisms, focus: frozenset[str] = frozenset()
) -> Iterator[tuple[str, Spec]]:
    r = msgspec.structs.replace
    if b.order == "arrival":
        if focus & {"starve", "aging"}:
            yield "starve", r(b, order="shortest-prompt", backfill=True, starve_s=120.0)
        yield "sched-order", r(b, order="shortest-prompt", backfill=True)
        yield "token_budget", r(b, token_budget=2048)
        return
    if b.starve_s == 0:  # the objective weighs the tail: bound the longest waits first
        yield "starve", r(b, starve_s=120.0)
    else:
        for v in _neighbours(b.starve_s, (30.0, 60.0, 120.0, 240.0, 480.0)):
            yield "starve", r(b, starve_s=v)
    for v in _neighbours(b.aging, (0.0, 12.5, 25.0, 50.0, 100.0, 200.0, 400.0)):
        yield "aging", r(b, aging=v)
    yield "backfill", r(b, backfill=not b.backfill)
    yield "victim", r(b, victim="most-blocks" if b.victim == "youngest" else "youngest")
    for v in _neighbours(b.token_budget or 8192, (512, 1024, 2048, 4096, 8192)):
        yield "token_budget", r(b, token_budget=0 if v == 8192 else int(v))


def _scaler_moves(b: ScalerMechanisms) -> Iterator[tuple[str, Spec]]:
    r = msgspec.structs.replace
    for v in _neighbours(b.target, (16.0, 24.0, 32.0, 40.0, 48.0, 56.0, 64.0, 80.0)):
        yield "target", r(b, target=v)
    for v in _neighbours(b.down_delay_s, (0.0, 30.0, 60.0, 120.0, 300.0, 600.0)):
        yield "down_delay", r(b, down_delay_s=v)
    for v in _neighbours(b.window_s, (15.0, 30.0, 60.0, 120.0, 240.0)):
        yield "window", r(b, window_s=v)
    for v in _neighbours(b.boost, (1.0, 1.1, 1.25, 1.5)):
        yield "boost", r(b, boost=v)
    for v in _neighbours(b.interval_s, (5.0, 15.0, 30.0)):
        yield "interval", r(b, interval_s=v)
    yield "trend", r(b, trend=not b.trend)


def _next(st: _State) -> tuple[str, Spec] | None:
    best = st.best()
    if best is None or best.spec is None:
        return None
    seen = st.evaluated()
    todo = [(why, m) for why, m in _moves(best.spec, st) if m not in seen]
    if not todo:
        return None
    if st.focus:  # what people's notes point to goes first (a stable sort keeps the rest)
        todo.sort(key=lambda wm: wm[0] not in st.focus)
        return todo[0]
    # Parallel contexts would otherwise run the same search: each opens a different direction
    # first (the k-th most promising), then all refine greedily.
    first = len(st.trials) == 1
    return todo[st.context % len(todo)] if first else todo[0]


def _source(task: Task, m: Spec, why: str, n: int) -> str:
    header = (
        f"# Trial design {n}: {m.describe()}\n"
        f"# Why: {_WHY.get(why, why)}\n"
        f"{_MARK}{msgspec.json.encode(m).decode()}\n"
    )
    return header + task.compose(m, name=f"Design{n}")


# -- the researcher ----------------------------------------------------------------------------
def _call(tool: str, **args: Any) -> ModelResponse:
    return ModelResponse(parts=[ToolCallPart(tool, args)])


def _say(text: str) -> ModelResponse:
    return ModelResponse(parts=[TextPart(f"[{OFFLINE_LABEL}]\n{text}")])


def _researcher(seat: Seat, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    st = _read(messages, seat)
    names = [c.tool_name for c in st.calls]
    if "list_files" not in names:
        return _call("list_files")
    if "read_file" not in names:
        example = st.task.example[0]
        return _call("read_file", path=example)
    listing = next(st.returns.get(c.tool_call_id) for c in st.calls if c.tool_name == "list_files")
    if "previous_best.py" in str(listing) and "previous_best.py" not in st.files:
        return _call("read_file", path="previous_best.py")  # continue the previous context
    last = st.last
    if last is not None and last.tool_name == "write_file":
        path = last.args_as_dict()["path"]
        spec = _spec(st.files.get(path, ""), st.task)
        if (
            path.startswith("designs/")
            and spec is not None
            and path not in {t.path for t in st.trials}
        ):
            note = spec.describe()
            return _call("run_simulation", design_path=path, note=note)
    if not st.trials:
        base = _spec(st.files.get("previous_best.py", ""), st.task) or st.task.mechanisms()
        source = _source(st.task, base, "baseline", 1)
        return _call("write_file", path="designs/01.py", content=source)
    if st.trials[0].csv_paths and "run_analysis" not in names:
        pattern = st.trials[0].csv_paths[0]
        return _call("run_analysis", script=ANALYSIS.format(pattern=pattern))
    best = st.best()
    if st.why and best is not None and best.csv_paths and best.index != st.trials[0].index:
        first, mine = st.trials[0].csv_paths[0], best.csv_paths[0]
        return _call("run_analysis", script=COMPARE.format(first=first, best=mine))
    out_of_budget = st.left == 0
    if out_of_budget or (nxt := _next(st)) is None:
        if best is not None and st.files.get("best.py") != st.files.get(best.path):
            return _call("write_file", path="best.py", content=st.files[best.path])
        return _say(_final(st, out_of_budget))
    if st.turn_trials >= _PER_TURN:
        if best is not None and st.files.get("best.py") != st.files.get(best.path):
            # Keep best.py the design to ship, in case the supervisor ends the context here.
            return _call("write_file", path="best.py", content=st.files[best.path])
        return _say(_turn_report(st, nxt))
    why, m = nxt
    n = len(st.trials) + 1
    return _call("write_file", path=f"designs/{n:02d}.py", content=_source(st.task, m, why, n))


def _line(st: _State, t: _Trial, first: float | None) -> str:
    what = t.spec.describe() if t.spec else t.path
    if t.value is None:
        return f"- trial {t.index} ({what}): failed"
    rel = f" = {t.value / first:.2f}x the first design" if first else ""
    margin = "" if t.margin is None else f", SLO margin {t.margin * 100:.0f}%"
    edge = " (too close to the SLO to trust)" if t.edgy else ""
    return f"- trial {t.index} ({what}): {st.label} {t.value:.3f}{st.unit}{rel}{margin}{edge}"


def _evidence(st: _State) -> str:
    a = st.analysis
    if not a:
        return ""
    gained = ""
    if "best_short_prompt_e2e_s" in a:
        gained = (
            "Compared with the first design (first seed): short prompts' mean E2E went from "
            f"{a['first_short_prompt_e2e_s']:.1f} s to {a['best_short_prompt_e2e_s']:.1f} s, "
            f"long prompts' from {a['first_long_prompt_e2e_s']:.1f} s to "
            f"{a['best_long_prompt_e2e_s']:.1f} s; preempted requests from "
            f"{a['first_restarted_fraction'] * 100:.1f}% to "
            f"{a['best_restarted_fraction'] * 100:.1f}%.\n"
        )
    return gained + (
        f"From the first run's per-request table: {a.get('restarted_fraction', 0) * 100:.1f}% "
        f"of requests were preempted and recomputed (their mean E2E is "
        f"{a.get('restarted_e2e_ratio', 1):.1f}x the others'); queueing is "
        f"{a.get('queueing_share', 0) * 100:.0f}% of all E2E time; the longest 10% of prompts "
        f"see {a.get('long_prompt_e2e_ratio', 1):.1f}x the mean E2E.\n"
    )


def _turn_report(st: _State, nxt: tuple[str, Spec]) -> str:
    first = st.trials[0].value
    recent = "\n".join(_line(st, t, first) for t in st.trials[-st.turn_trials :])
    best = st.best()
    assert best is not None and best.spec is not None
    why, m = nxt
    return (
        f"{_evidence(st)}This turn:\n{recent}\n"
        f"Best so far: trial {best.index} ({best.spec.describe()}), {st.label} "
        f"{best.value:.3f}{st.unit}.\n"
        f"Next hypothesis: {_WHY.get(why, why)} (try {m.describe()})"
        + (", as the note from the person watching the run suggests." if why in st.focus else ".")
    )


def _final(st: _State, out_of_budget: bool) -> str:
    first = st.trials[0].value if st.trials else None
    lines = "\n".join(_line(st, t, first) for t in st.trials)
    best = st.best()
    end = "No simulations left." if out_of_budget else "No untried change is left near the best."
    head = f"Final report. {end}\n{_evidence(st)}All trials:\n{lines}\n"
    if st.task.uses_slo:
        head += (
            f"A design whose worst seed came within {_MARGIN:.0%} of the SLO is not trusted: "
            "the p90s vary from day to day and fall off a cliff near saturation, so a held-out "
            "day could miss the SLO.\n"
        )
    if best is None or best.spec is None:
        return head + "No design ran successfully."
    return head + (
        f"Best design: best.py (trial {best.index}: {best.spec.describe()}), {st.label} "
        f"{best.value:.3f}{st.unit}."
    )


# -- the supervisor ----------------------------------------------------------------------------
def _supervisor(seat: Seat, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """Reads its context's trials and replies by rule. Costs are taken to the two decimals the
    coordinator's table shows a supervisor, so near-ties break as a reader of it would."""
    relayed = "".join(f"{RELAYED} {n}\n" for n in _notes(messages))
    reply = _supervise(seat)
    if relayed:  # a person's notes go first, word for word, then the rule's reply
        text = reply.parts[0].content if isinstance(reply.parts[0], TextPart) else ""
        head = f"[{OFFLINE_LABEL}]\n"
        return _say(relayed + text.removeprefix(head))
    return reply


def _notes(messages: list[ModelMessage]) -> list[str]:
    """People's notes in the coordinator's last prompt (see ``HUMAN_NOTES``)."""
    last = messages[-1] if messages else None
    parts = last.parts if isinstance(last, ModelRequest) else []
    text = "\n".join(p.content for p in parts
                     if isinstance(p, UserPromptPart) and isinstance(p.content, str))  # fmt: skip
    if HUMAN_NOTES not in text:
        return []
    section = text.split(HUMAN_NOTES, 1)[1].splitlines()[1:]
    return [line[2:].strip() for line in section if line.startswith("- ")]


def _supervise(seat: Seat) -> ModelResponse:
    trials = seat.trials()
    ok = [(t.index, round(trial_cost(t), 2), t.note or t.design_path)
          for t in trials if t.mean_e2e_s is not None]  # fmt: skip
    if not ok:
        return _say("Nothing has run successfully yet. Read the failure, fix the design, rerun.")
    best = min(ok, key=lambda r: (r[1], r[0]))
    since = sum(1 for t in trials if t.index > best[0])
    if since >= 5:
        return _say(
            f"None of the last {since} simulations beat trial {best[0]} ({best[1]:.2f}). This "
            f"direction has converged; more tuning would waste simulations.\n{END}"
        )
    if since == 0 and len(ok) > 1:
        others = sorted((r for r in ok if r[0] != best[0]), key=lambda r: r[1])
        runner = others[0]
        return _say(
            f"Trial {best[0]} is your best so far ({best[1]:.2f}). Which requests gained: "
            f"short prompts or long ones, and did preemptions fall? Recall trial {runner[0]} "
            f"({runner[2]}, {runner[1]:.2f}): could it combine with what works now?"
        )
    return _say(
        f"The last {since} simulations did not beat trial {best[0]} ({best[1]:.2f}). Before "
        "tuning further, explain from the per-request data why that design works, and go back "
        "to it."
    )


@dataclass(frozen=True)
class Seat:
    """Where an offline agent works: its context, the task, and that context's trials so far
    (as the coordinator records them). It reads these as values, never from the wording of
    its prompts."""

    context: int = 0
    task: Task = DEFAULT_TASK
    trials: Callable[[], list[Trial]] = list
    prefix_caching: bool = False
    """The cluster caches prompt prefixes (the brief's cluster description says so)."""


class SeatedModel(FunctionModel):
    """A scripted agent the coordinator seats in each context (see :class:`Seat`) before it
    works there: the offline designer, and the offline search methods of ``glia compare``."""

    def seated(self, seat: Seat) -> SeatedModel:
        """The same agent, working in ``seat``."""
        raise NotImplementedError


class OfflineModel(SeatedModel):
    """The offline researcher or supervisor; :meth:`seated` gives it a context's seat."""

    def __init__(self, role: Literal["researcher", "supervisor"], seat: Seat = Seat()) -> None:
        agent = _researcher if role == "researcher" else _supervisor
        super().__init__(partial(agent, seat), model_name=f"offline-{role}")
        self.role, self.seat = role, seat

    def seated(self, seat: Seat) -> OfflineModel:
        """The same agent, working in ``seat``."""
        return OfflineModel(self.role, seat)


def offline_researcher() -> OfflineModel:
    """The offline researcher as a pydantic-ai model."""
    return OfflineModel("researcher")


def offline_supervisor() -> OfflineModel:
    """The offline supervisor as a pydantic-ai model."""
    return OfflineModel("supervisor")
