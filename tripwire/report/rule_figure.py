"""The figure behind one rule's findings: one row per panel, each with its limits drawn in.

Lines share the step axis (integer ticks); the threshold and the rule's other limits are dashed
red lines, labelled; the steps where the rule fired are dotted (severity color). A panel of
values taken at one time (input moments, initial gains, feature importance) is drawn as bars,
where the limits are horizontal lines across the bars. Lines that coincide (two layers whose
gradients vanished together) get their own dash and marker, so the second is not hidden under
the first. :func:`caption` says only what the figure draws.

Example:
    >>> import numpy as np
    >>> from tripwire.report.panel import Line, Panel
    >>> a = Line("fc1", np.array([0, 10, 20]), np.array([1e-9, 1e-9, 1e-9]))
    >>> b = Line("fc2", np.array([0, 10, 20]), np.array([1e-9, 1e-9, 1e-9]))
    >>> panel = Panel("mean |gradient|", [a, b], log_y=True, threshold=1e-7)
    >>> fig = panels_figure([panel], [])
    >>> [t.line.dash for t in fig.data], fig.layout.yaxis.type, fig.layout.xaxis.tickformat
    (['solid', 'dash', 'dash'], 'log', 'd')
    >>> caption([panel])
    'Dashed red: the threshold. Dotted: the steps where this rule fired.'
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from tripwire.finding import Finding
from tripwire.report.axes import YAxis, y_axis
from tripwire.report.panel import Line, Panel
from tripwire.report.plots import (
    LIMIT_STYLE,
    PANEL_HEIGHT,
    TEMPLATE,
    integer_steps,
    line_traces,
    mark_findings,
    text,
    unique_labels,
)

_DASHES = ("dash", "dot", "dashdot", "longdash", "longdashdot")
_SYMBOLS = ("diamond", "square", "triangle-up", "cross", "star")


def panels_figure(panels: Sequence[Panel], findings: Sequence[Finding]) -> go.Figure:
    """One row per panel, each with its own legend and y axis (see :mod:`tripwire.report.axes`)."""
    panels = [as_bars(p) if not p.bars and all(len(ln.steps) <= 1 for ln in p.lines) else p for p in panels]
    over_steps = not any(p.bars for p in panels)
    fig = make_subplots(rows=len(panels), cols=1, shared_xaxes=over_steps,
                        subplot_titles=[text(p.title) for p in panels])
    steps: list[np.ndarray] = []
    for row, panel in enumerate(panels, start=1):
        axis = y_axis([ln.values for ln in panel.lines], [v for v, _ in panel.limits()], log=panel.log_y,
                      bars=panel.bars)
        legend = "legend" if row == 1 else f"legend{row}"
        traces = _bar_traces(panel, axis) if panel.bars else _line_traces(panel, row, axis)
        for trace in traces:
            trace.legend = legend
            fig.add_trace(trace, row=row, col=1)
        fig.update_yaxes(row=row, col=1, **axis.layout())
        if panel.bars:
            for value, label in panel.limits():  # a shape across the bars, in data units on either axis
                fig.add_hline(y=value, row=row, col=1, line=LIMIT_STYLE)
                y = np.log10(value) if axis.log and value > 0 else value  # an annotation: log10 on a log axis
                fig.add_annotation(x=0, xref="x domain", y=y, text=text(label), showarrow=False, xanchor="left",
                                   yanchor="bottom", font={"color": LIMIT_STYLE["color"], "size": 11},
                                   bgcolor="rgba(255,255,255,0.75)", row=row, col=1)
        else:
            steps += [ln.steps for ln in panel.lines]
            mark_findings(fig, findings, row=row)
        top = fig.layout[f"yaxis{'' if row == 1 else row}"].domain[1]
        fig.update_layout({legend: {"y": top, "yanchor": "top", "x": 1.01, "xanchor": "left", "font": {"size": 11}}})
    if over_steps:
        fig.update_xaxes(title_text="step", row=len(panels), col=1)
        integer_steps(fig, np.concatenate(steps + [np.asarray([f.step for f in findings], dtype=np.int64)]))
    fig.update_layout(template=TEMPLATE, height=PANEL_HEIGHT * len(panels) + 60,
                      margin={"l": 60, "r": 20, "t": 40, "b": 40})
    return fig


def caption(panels: Sequence[Panel]) -> str:
    """What the figure of ``panels`` draws besides its lines and bars (plain text)."""
    limits = any(p.limits() for p in panels)
    over_steps = any(not p.bars and any(len(ln.steps) > 1 for ln in p.lines) for p in panels)
    out = []
    if limits:
        extra = any(len(p.limits()) > 1 or p.bounds for p in panels)
        out.append("Dashed red: the threshold" + (" and the rule's limits." if extra else "."))
    if over_steps:
        out.append("Dotted: the steps where this rule fired.")
    if any(p.log_y and any((ln.values == 0).any() for ln in p.lines) for p in panels):
        out.append("On a log axis, zeros are drawn on the row labelled 0.")
    return " ".join(out)


def _line_traces(panel: Panel, row: int, axis: YAxis) -> list[go.Scatter]:
    traces, x_all, drawn = [], [], []
    for i, line in enumerate(panel.lines):
        same = sum(1 for other in drawn if coincide(line, other))
        style = {} if not same or line.context else {"dash": _DASHES[(same - 1) % len(_DASHES)],
                                                     "symbol": _SYMBOLS[(same - 1) % len(_SYMBOLS)]}
        traces += line_traces(line, axis=axis, legendgroup=f"p{row}l{i}", **style)
        drawn.append(line)
        if len(line.steps):
            x_all += [line.steps.min(), line.steps.max()]
    for value, label in panel.limits():  # traces, not shapes: they follow a log axis as they are
        if x_all:
            traces.append(go.Scatter(x=[min(x_all), max(x_all)], y=[value] * 2, mode="lines", name=text(label),
                                     line=LIMIT_STYLE, hoverinfo="name"))
    return traces


def _bar_traces(panel: Panel, axis: YAxis) -> list[go.Bar]:
    return [go.Bar(x=unique_labels(line.categories or []), y=axis.place(line.values), name=text(line.label),
                   hovertext=[f"{v:.4g}" for v in line.values], hoverinfo="x+text+name")
            for line in panel.lines]


def as_bars(panel: Panel) -> Panel:
    """One bar per line, for series recorded at a single step."""
    lines = [ln for ln in panel.lines if len(ln.steps)]
    step = lines[0].steps[0] if lines else 0
    bars = Line(f"at step {step}", np.zeros(len(lines), dtype=np.int64),
                np.array([ln.values[0] for ln in lines], dtype=float), categories=[ln.label for ln in lines])
    return Panel(panel.title, [bars], log_y=panel.log_y, threshold=panel.threshold, note=panel.note,
                 bounds=panel.bounds)


def coincide(a: Line, b: Line) -> bool:
    """Whether two lines would be drawn on top of each other: the same steps and, at most of
    a fifth of them, the same value (within 0.1%): the later one would be hidden there.

    Example:
        >>> s = np.array([0, 10])
        >>> coincide(Line("a", s, np.array([1.0, 2.0])), Line("b", s, np.array([1.0, 2.0005])))
        True
    """
    if len(a.steps) != len(b.steps) or not len(a.steps) or not np.array_equal(a.steps, b.steps):
        return False
    both = np.isfinite(a.values) & np.isfinite(b.values)
    if not both.any():
        return False
    same = np.isclose(a.values[both], b.values[both], rtol=1e-3, atol=0.0)
    return bool(same.mean() >= 0.2)
