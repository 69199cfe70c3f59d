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
from plotly.subplots import make_subplots

from tripwire.finding import Finding
from tripwire.record import Run
from tripwire.report.panel import Line, Panel, natural_key

MAX_POINTS = 2000  # per line
MAX_COLUMNS = 400  # heatmap steps; more are averaged into buckets
MAX_ROWS = 150  # heatmap layers
MAX_MARKED = 30  # findings drawn as vertical lines on one plot

SEVERITY_COLORS = {"error": "#c62828", "warning": "#ef6c00", "info": "#1565c0"}
_TEMPLATE = "plotly_white"
_PANEL_HEIGHT = 280


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


# ---- rule panels -----------------------------------------------------------------------------


def panels_figure(panels: Sequence[Panel], findings: Sequence[Finding]) -> go.Figure:
    """One row per panel, each with its own legend; lines share the step axis, the threshold is
    dashed red, the finding steps dotted. A panel whose series hold one step each (values taken
    before training) is drawn as bars, one per subject."""
    panels = [_as_bars(p) if not p.bars and all(len(ln.steps) <= 1 for ln in p.lines) else p for p in panels]
    over_steps = not any(p.bars for p in panels)
    fig = make_subplots(rows=len(panels), cols=1, shared_xaxes=over_steps,
                        subplot_titles=[text(p.title) for p in panels])
    for row, panel in enumerate(panels, start=1):
        # a log axis would hide zeros, and a zero is often the point (a variance of 0, a dead gradient)
        log_y = panel.log_y and all((ln.values[np.isfinite(ln.values)] > 0).all() for ln in panel.lines)
        legend = "legend" if row == 1 else f"legend{row}"
        traces = _bar_traces(panel) if panel.bars else _line_traces(panel, row, log_y)
        for trace in traces:
            trace.legend = legend
            fig.add_trace(trace, row=row, col=1)
        if log_y:
            fig.update_yaxes(type="log", row=row, col=1)
        if panel.bars:
            if panel.threshold is not None:  # a shape: y in log10 on a log axis
                y = np.log10(panel.threshold) if log_y and panel.threshold > 0 else panel.threshold
                fig.add_hline(y=y, row=row, col=1, line={"color": "#c62828", "dash": "dash", "width": 2},
                              annotation_text=text(f"threshold {panel.threshold:g}"))
        else:
            _mark_findings(fig, findings, row=row)
        top = fig.layout[f"yaxis{'' if row == 1 else row}"].domain[1]
        fig.update_layout({legend: {"y": top, "yanchor": "top", "x": 1.01, "xanchor": "left", "font": {"size": 11}}})
    if over_steps:
        fig.update_xaxes(title_text="step", row=len(panels), col=1)
    fig.update_layout(template=_TEMPLATE, height=_PANEL_HEIGHT * len(panels) + 60,
                      margin={"l": 60, "r": 20, "t": 40, "b": 40})
    return fig


def _line_traces(panel: Panel, row: int, log_y: bool) -> list[go.Scatter]:
    traces, x_all = [], []
    for i, line in enumerate(panel.lines):
        traces += line_traces(line, log_y=log_y, legendgroup=f"p{row}l{i}")
        if len(line.steps):
            x_all += [line.steps.min(), line.steps.max()]
    if panel.threshold is not None and x_all:  # a trace, not a shape: it follows a log axis as it is
        traces.append(go.Scatter(x=[min(x_all), max(x_all)], y=[panel.threshold] * 2, mode="lines",
                                 name=text(f"threshold {panel.threshold:g}"),
                                 line={"color": "#c62828", "dash": "dash", "width": 2}))
    return traces


def _bar_traces(panel: Panel) -> list[go.Bar]:
    return [go.Bar(x=_unique_labels(line.categories or []), y=line.values, name=text(line.label))
            for line in panel.lines]


def _as_bars(panel: Panel) -> Panel:
    """One bar per line, for series recorded at a single step."""
    lines = [ln for ln in panel.lines if len(ln.steps)]
    step = lines[0].steps[0] if lines else 0
    bars = Line(f"at step {step}", np.zeros(len(lines), dtype=np.int64),
                np.array([ln.values[0] for ln in lines], dtype=float), categories=[ln.label for ln in lines])
    return Panel(panel.title, [bars], log_y=panel.log_y, threshold=panel.threshold, note=panel.note)


def line_traces(line: Line, *, log_y: bool = False, legendgroup: str | None = None) -> list[go.Scatter]:
    """A line (downsampled), plus red crosses at steps where it was NaN/Inf, placed at the
    nearest earlier finite value so they show on a log axis too."""
    steps, values = downsample(line.steps, line.values)
    shown = np.where(np.isfinite(values) & ((values > 0) | (not log_y)), values, np.nan)
    style = {"width": 1, "color": "#9e9e9e"} if line.context else {"width": 2}
    mode = "lines+markers" if len(steps) <= 30 else "lines"
    traces = [go.Scatter(x=steps, y=shown, mode=mode, name=text(line.label), line=style,
                         opacity=0.5 if line.context else 1.0, legendgroup=legendgroup)]
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        filled = _forward_fill(shown)
        at = filled[bad]
        ok = np.isfinite(at)
        if ok.any():
            traces.append(go.Scatter(x=steps[bad][ok], y=at[ok], mode="markers", name=text(f"{line.label}: NaN/Inf"),
                                     marker={"symbol": "x", "size": 9, "color": "#c62828"}, legendgroup=legendgroup))
    return traces


def _forward_fill(values: np.ndarray) -> np.ndarray:
    ok = np.isfinite(values)
    if not ok.any():
        return values
    idx = np.where(ok, np.arange(len(values)), -1)
    np.maximum.accumulate(idx, out=idx)
    first = np.flatnonzero(ok)[0]
    idx[idx < 0] = first  # before the first finite value: use it
    return values[idx]


def _mark_findings(fig: go.Figure, findings: Sequence[Finding], *, row: int | None = None) -> None:
    for f in sorted(findings, key=lambda f: f.step)[:MAX_MARKED]:
        kwargs = {"row": row, "col": 1} if row is not None else {}
        fig.add_vline(x=f.step, line={"color": SEVERITY_COLORS.get(f.severity, "#555"), "dash": "dot", "width": 1},
                      **kwargs)


# ---- findings timeline -------------------------------------------------------------------------


def timeline_figure(findings: Sequence[Finding]) -> go.Figure:
    """Findings as points: step across, rule down, color by severity; hover tells the rest."""
    rules = list(dict.fromkeys(f.rule for f in sorted(findings, key=lambda f: f.step)))
    fig = go.Figure()
    for severity, color in SEVERITY_COLORS.items():
        chosen = [f for f in findings if f.severity == severity]
        if not chosen:
            continue
        hover = [f"<b>{text(f.rule)}</b> at step {f.step}" + (f"<br>{wrapped(f.subject)}" if f.subject else "")
                 + f"<br>{wrapped(f.message)}" for f in chosen]
        fig.add_trace(go.Scatter(x=[f.step for f in chosen], y=[text(f.rule) for f in chosen], mode="markers",
                                 name=severity, marker={"color": color, "size": 13, "symbol": "diamond"},
                                 hovertext=hover, hoverinfo="text"))
    fig.update_yaxes(type="category", categoryorder="array", categoryarray=[text(r) for r in rules][::-1])
    fig.update_layout(template=_TEMPLATE, height=120 + 36 * len(rules), xaxis_title="step",
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
    _mark_findings(fig, findings)
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
    fig.update_layout(template=_TEMPLATE, height=380, xaxis_title="step", yaxis_title="loss",
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
    labels = _unique_labels(subjects)
    zopts = {"zmin": zrange[0], "zmax": zrange[1]} if zrange else {}
    fig = go.Figure(go.Heatmap(z=grid, x=steps, y=labels, colorscale=colorscale, hoverongaps=False,
                               colorbar={"title": {"text": text(f"log10 {name}" if log10 else name)}}, **zopts))
    fig.update_yaxes(type="category", autorange="reversed")
    fig.update_layout(template=_TEMPLATE, height=min(1400, 160 + 16 * len(labels)), xaxis_title="step",
                      plot_bgcolor="#d5d5d5", margin={"l": 20, "r": 20, "t": 32, "b": 40})  # gray = no value
    fig.update_yaxes(automargin=True)
    return fig, note


def _unique_labels(subjects: Sequence[str]) -> list[str]:
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
