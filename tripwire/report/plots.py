"""Plotly figures for the report: rule panels, findings timeline, loss curves, layer × step heatmaps.

Figures are built with ``plotly.graph_objects`` and serialized with plotly's encoder (numpy
arrays become compact typed arrays). Every string handed to plotly is HTML-escaped first:
plotly renders labels as a small HTML subset, so a layer named ``<b>x</b>`` would otherwise be
drawn bold, and the escaped form is what it shows literally.

Series longer than :data:`MAX_POINTS` are reduced to the minimum and maximum of each bucket, so
a one-step gradient spike survives the reduction.

Example:
    >>> import numpy as np
    >>> steps, values = downsample(np.arange(10_000), np.sin(np.arange(10_000) / 100.0), limit=1000)
    >>> len(steps) <= 1000, round(float(values.max()), 3), round(float(values.min()), 3)
    (True, 1.0, -1.0)
"""

from __future__ import annotations

import html
import itertools
import re
import textwrap
import warnings
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio

from tripwire.finding import Finding
from tripwire.record import Run
from tripwire.report.axes import YAxis
from tripwire.report.panel import Line, natural_key

MAX_POINTS = 2000  # per line
MAX_COLUMNS = 400  # heatmap steps; more are averaged into buckets
MAX_ROWS = 150  # heatmap layers
MAX_MARKED = 30  # findings drawn as vertical lines on one plot

SEVERITY_COLORS = {"error": "#c62828", "warning": "#ef6c00", "info": "#1565c0"}
TEMPLATE = "plotly_white"
PANEL_HEIGHT = 280


def text(value: object) -> str:
    """A string as plotly displays it literally (escaped; plotly decodes the entities)."""
    return html.escape(str(value), quote=False)


def wrapped(value: object, width: int = 90) -> str:
    """Escaped text wrapped with plotly's ``<br>`` for hover boxes."""
    return "<br>".join(text(line) for line in textwrap.wrap(str(value), width) or [""])


def to_json(fig: go.Figure) -> str:
    """Plotly's JSON of a figure (the caller makes it safe for a script element)."""
    return pio.to_json(fig, validate=False)


def downsample(steps: np.ndarray, values: np.ndarray, limit: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """At most ``limit`` points: each bucket keeps its smallest and largest finite value and its
    first non-finite one (so gaps and NaN markers survive)."""
    n = len(steps)
    if n <= limit:
        return steps, values
    edges = np.linspace(0, n, limit // 2 + 1).astype(np.int64)
    finite = np.isfinite(values)
    keep: list[int] = []
    for a, b in itertools.pairwise(edges):
        ok = np.flatnonzero(finite[a:b])
        if len(ok):
            seg = values[a:b][ok]
            keep += [a + int(ok[np.argmin(seg)]), a + int(ok[np.argmax(seg)])]
        if len(ok) < b - a:
            keep.append(a + int(np.flatnonzero(~finite[a:b])[0]))
    idx = np.unique(keep)
    return steps[idx], values[idx]


# ---- lines over steps ------------------------------------------------------------------------

#: the threshold and every other limit of a rule
LIMIT_STYLE = {"color": "#c62828", "dash": "dash", "width": 2}


def line_traces(line: Line, *, axis: YAxis | None = None, legendgroup: str | None = None, dash: str = "solid",
                symbol: str | None = None) -> list[go.Scatter]:
    """A line (downsampled), plus red crosses at steps where it was NaN/Inf, placed at the
    nearest earlier finite value so they show on a log axis too. ``axis`` places zeros on a log
    axis; ``dash`` and ``symbol`` tell apart lines that coincide (markers on every point)."""
    steps, values = downsample(line.steps, line.values)
    shown = (axis or YAxis(log=False)).place(np.where(np.isfinite(values), values, np.nan))
    style = {"width": 1, "color": "#9e9e9e"} if line.context else {"width": 2, "dash": dash}
    mode = "lines+markers" if len(steps) <= 30 or symbol else "lines"
    marker = {"symbol": symbol, "size": 7} if symbol else {}
    traces = [go.Scatter(x=steps, y=shown, mode=mode, name=text(line.label), line=style, marker=marker,
                         opacity=0.5 if line.context else 1.0, legendgroup=legendgroup,
                         hovertext=[f"{v:.4g}" for v in values], hoverinfo="x+text+name")]
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        filled = _forward_fill(shown)
        at = filled[bad]
        ok = np.isfinite(at)
        if ok.any():
            traces.append(go.Scatter(x=steps[bad][ok], y=at[ok], mode="markers", name=text(f"{line.label}: NaN/Inf"),
                                     marker={"symbol": "x", "size": 9, "color": "#c62828"}, legendgroup=legendgroup))
    return traces


def integer_steps(fig: go.Figure, steps: np.ndarray) -> None:
    """Step axes tick at whole steps (one per step over a short run)."""
    span = int(steps.max() - steps.min()) if len(steps) else 0
    fig.update_xaxes(tickformat="d", **({"dtick": 1} if span <= 10 else {}))


def _forward_fill(values: np.ndarray) -> np.ndarray:
    ok = np.isfinite(values)
    if not ok.any():
        return values
    idx = np.where(ok, np.arange(len(values)), -1)
    np.maximum.accumulate(idx, out=idx)
    first = np.flatnonzero(ok)[0]
    idx[idx < 0] = first  # before the first finite value: use it
    return values[idx]


def mark_findings(fig: go.Figure, findings: Sequence[Finding], *, row: int | None = None) -> None:
    """Dotted vertical lines (severity color) at the steps of the first findings, in the ``row``-th
    subplot (None: a figure without subplots). The shapes ``add_vline`` would make, added at once:
    plotly validates the whole layout again at each ``add_vline``, seconds for 30 lines."""
    xref, yref = "x", "y"
    if row is not None:
        cell = fig.get_subplot(row, 1)
        xref, yref = cell.xaxis.plotly_name.replace("axis", ""), cell.yaxis.plotly_name.replace("axis", "")
    lines = [go.layout.Shape(type="line", xref=xref, yref=f"{yref} domain", x0=f.step, x1=f.step, y0=0, y1=1,
                             line={"color": SEVERITY_COLORS.get(f.severity, "#555"), "dash": "dot", "width": 1})
             for f in sorted(findings, key=lambda f: f.step)[:MAX_MARKED]]
    if lines:
        fig.update_layout(shapes=[*fig.layout.shapes, *lines])


# ---- findings timeline -------------------------------------------------------------------------


def timeline_figure(findings: Sequence[Finding], repeats: Sequence[Finding] = ()) -> go.Figure:
    """Findings across steps, rule down, color by severity; hover tells the rest. A finding that
    fired more than once (re-armed and fired again, or repeated before it re-armed) is one band
    per rule and subject from its first to its last occurrence, not a point per occurrence.

    Example:
        >>> f = Finding(rule="exploding_gradient", kind="exploding_gradient", step=10, epoch=0,
        ...             severity="warning", subject=None, value=3.0, threshold=1.0, message="m", suggestion="s")
        >>> from dataclasses import replace
        >>> fig = timeline_figure([f, replace(f, step=90)], [replace(f, step=50)])
        >>> [(t.x, t.name) for t in fig.data]
        [((10, 90, None), 'warning')]
    """
    episodes: dict[tuple[str, str | None], list[Finding]] = {}
    for f in sorted([*findings, *repeats], key=lambda f: f.step):
        episodes.setdefault((f.rule, f.subject), []).append(f)
    rules = list(dict.fromkeys(rule for rule, _ in episodes))
    fig = go.Figure()
    for severity, color in SEVERITY_COLORS.items():
        chosen = [group for group in episodes.values() if group[0].severity == severity]
        if not chosen:
            continue
        xs: list = []
        ys: list = []
        hover: list = []
        for group in chosen:
            first, last = group[0], group[-1]
            text_ = (f"<b>{text(first.rule)}</b> at step {first.step}"
                     + (f"<br>{wrapped(first.subject)}" if first.subject else "") + f"<br>{wrapped(first.message)}"
                     + (f"<br>fired {len(group)} times, last at step {last.step}" if len(group) > 1 else ""))
            ends = [first.step] if last.step == first.step else [first.step, last.step]
            xs += [*ends, None]
            ys += [text(first.rule)] * len(ends) + [None]
            hover += [text_] * len(ends) + [None]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=severity, connectgaps=False,
                                 line={"color": color, "width": 8}, opacity=0.8,
                                 marker={"color": color, "size": 13, "symbol": "diamond"},
                                 hovertext=hover, hoverinfo="text"))
    fig.update_yaxes(type="category", categoryorder="array", categoryarray=[text(r) for r in rules][::-1])
    integer_steps(fig, np.asarray([f.step for f in findings], dtype=np.int64))
    fig.update_layout(template=TEMPLATE, height=120 + 36 * len(rules), xaxis_title="step",
                      margin={"l": 140, "r": 20, "t": 20, "b": 40})
    return fig


# ---- loss curves -------------------------------------------------------------------------------


def loss_figure(run: Run, findings: Sequence[Finding], names: Sequence[str]) -> go.Figure | None:
    """``loss`` and ``val_loss`` over steps, with the findings' steps marked; None without losses."""
    lines = [Line(n, *run.series(n)) for n in ("loss", "val_loss") if n in names]
    lines = [ln for ln in lines if len(ln.steps)]
    if not lines:
        return None
    fig = go.Figure()
    for line in lines:
        for trace in line_traces(line):
            fig.add_trace(trace)
    mark_findings(fig, findings)
    train = next((ln for ln in lines if ln.label == "loss" and np.isfinite(ln.values).any()), None)
    if train is not None and findings:  # hoverable markers on the curve where each rule fired
        ok = np.isfinite(train.values)
        for severity, color in SEVERITY_COLORS.items():
            chosen = [f for f in findings if f.severity == severity]
            if chosen:
                steps = [f.step for f in chosen]
                fig.add_trace(go.Scatter(
                    x=steps, y=np.interp(steps, train.steps[ok], train.values[ok]), mode="markers",
                    name=f"findings ({severity})", marker={"color": color, "size": 11, "symbol": "diamond"},
                    hovertext=[f"<b>{text(f.rule)}</b> at step {f.step}<br>{wrapped(f.message)}" for f in chosen],
                    hoverinfo="text"))
    integer_steps(fig, np.concatenate([ln.steps for ln in lines]))
    fig.update_layout(template=TEMPLATE, height=380, xaxis_title="step", yaxis_title="loss",
                      margin={"l": 60, "r": 20, "t": 20, "b": 40})
    return fig


# ---- layer x step heatmaps -------------------------------------------------------------------


def heatmap_figure(run: Run, name: str, *, log10: bool, zrange: tuple[float, float] | None = None,
                   colorscale: str = "Viridis") -> tuple[go.Figure, str] | None:
    """Layer × step heatmap of one per-subject series (``log10`` of it for norms), with a note of
    what was reduced; None when the series has no per-subject values."""
    subjects = sorted((s for s in run.subjects(name) if s is not None), key=natural_key)
    if not subjects:
        return None
    note = ""
    if len(subjects) > MAX_ROWS:
        note += f"First {MAX_ROWS} of {len(subjects)} subjects shown. "
        subjects = subjects[:MAX_ROWS]
    series = [run.series(name, s) for s in subjects]
    steps = np.unique(np.concatenate([s for s, _ in series]))
    grid = np.full((len(subjects), len(steps)), np.nan)
    for row, (s, v) in enumerate(series):
        grid[row, np.searchsorted(steps, s)] = v
    if log10:
        with np.errstate(divide="ignore", invalid="ignore"):
            grid = np.where(grid > 0, np.log10(np.where(grid > 0, grid, 1.0)), np.nan)
    if len(steps) > MAX_COLUMNS:
        edges = np.linspace(0, len(steps), MAX_COLUMNS + 1).astype(np.int64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN bucket stays NaN
            grid = np.stack([np.nanmean(grid[:, a:b], axis=1) for a, b in itertools.pairwise(edges)], axis=1)
        steps = steps[edges[:-1]]
        note += f"{len(edges) - 1} step buckets (mean of each) shown. "
    labels = unique_labels(subjects)
    zopts = {"zmin": zrange[0], "zmax": zrange[1]} if zrange else {}
    fig = go.Figure(go.Heatmap(z=grid, x=steps, y=labels, colorscale=colorscale, hoverongaps=False,
                               colorbar={"title": {"text": text(f"log10 {name}" if log10 else name)}}, **zopts))
    fig.update_yaxes(type="category", autorange="reversed")
    integer_steps(fig, steps)
    fig.update_layout(template=TEMPLATE, height=min(1400, 160 + 16 * len(labels)), xaxis_title="step",
                      plot_bgcolor="#d5d5d5", margin={"l": 20, "r": 20, "t": 32, "b": 40})  # gray = no value
    fig.update_yaxes(automargin=True)
    return fig, note


def unique_labels(subjects: Sequence[str]) -> list[str]:
    """Escaped axis labels, long names shortened in the middle, kept distinct."""
    out: list[str] = []
    for s in subjects:
        label = s if len(s) <= 48 else s[:22] + "…" + s[-25:]
        label = text(label)
        while label in out:
            label += "\u200b"  # distinct category, invisible
        out.append(label)
    return out


def heatmap_series(names: Sequence[str]) -> list[tuple[str, bool, tuple[float, float] | None, str]]:
    """(series, log10, z range, colorscale) for the series that get a heatmap, in page order."""
    out = [("grad_norm", True, None, "Viridis")] if "grad_norm" in names else []
    fractions = re.compile(r"^act_(dead|tanh_sat|sigmoid_sat)_frac(\[|$)")
    out += [(n, False, (0.0, 1.0), "Reds") for n in names if fractions.match(n)]
    return out
