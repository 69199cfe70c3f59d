"""What the report says: header, findings, the rules' evidence, heatmaps, losses, config.

Example:
    >>> import tempfile
    >>> from tripwire.record import Run, RunRecord
    >>> from tripwire.stats import Sample
    >>> rec = RunRecord.create(tempfile.mkdtemp(), None, run_name="quiet", framework="torch")
    >>> rec.add_sample(Sample(step=10, epoch=0, stats={"loss": {None: 0.5}}))
    >>> rec.close()
    >>> text = build_page(Run(rec.directory))
    >>> 'id="findings"' in text and "No findings" in text and 'id="config"' in text
    True
    >>> '<p id="run-end" class="end end-in_progress">Run in progress, last sample at step 10.</p>' in text
    True
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np
import yaml

from tripwire.finding import Finding
from tripwire.record import Run
from tripwire.report import plots, rule_figure
from tripwire.report.evidence import panels_for
from tripwire.report.html import Figure, Section, esc, figure_div, page, table
from tripwire.wording import step_word

MAX_TABLE_ROWS = 1000
MAX_PER_RULE = 50


class _Figures:
    """Hands out figure ids and keeps the figures of the section being built."""

    def __init__(self) -> None:
        self.count = 0
        self.current: list[Figure] = []

    def add(self, fig: object, caption: str = "") -> str:
        self.count += 1
        figure = Figure(f"fig-{self.count}", plots.to_json(fig), caption)
        self.current.append(figure)
        return figure_div(figure)

    def take(self) -> list[Figure]:
        out, self.current = self.current, []
        return out


def build_page(run: Run) -> str:
    """The report page of one run, as HTML text."""
    import plotly.offline

    names = run.names()
    findings = sorted(run.findings, key=lambda f: f.step)
    steps = _sampled_steps(run, names)
    meta = run.meta
    figs = _Figures()
    sections = []
    for build in (_findings_section, _rules_section, _heatmap_section, _loss_section):
        made = build(run, findings, names, steps, figs)  # (id, title, body HTML) or None when empty
        if made is not None:
            section_id, heading, body = made
            sections.append(Section(section_id, heading, body, figs.take()))
    sections.append(Section("config", "Config", _config_body(run.config)))
    title = f"tripwire report · {run.name}"
    end = run.end
    return page(title, _header(run, meta, findings, steps), sections, plotly.offline.get_plotlyjs(),
                end=(end.state, end.headline(step_word(meta.get("framework")))))


def _sampled_steps(run: Run, names: Sequence[str]) -> np.ndarray:
    """Every step at which something was recorded."""
    parts = [run.series(n, run.subjects(n)[0])[0] for n in names]
    return np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)


def _header(run: Run, meta: dict, findings: Sequence[Finding], steps: np.ndarray) -> list[tuple[str, str]]:
    out = [("run", run.name), ("framework", meta.get("framework") or "unknown"),
           ("started", meta.get("created_at") or "unknown")]
    if meta.get("resumed_at"):
        out.append(("resumed", ", ".join(map(str, meta["resumed_at"]))))
    if len(steps):
        out.append(("sampled steps", f"{len(steps)} (steps {steps[0]}–{steps[-1]})"))
    out += [("findings", str(len(findings))), ("tripwire", str(meta.get("tripwire_version", "?"))),
            ("report written", time.strftime("%Y-%m-%d %H:%M:%S")), ("record", str(run.path))]
    return out


def _findings_section(run: Run, findings: Sequence[Finding], names: Sequence[str], steps: np.ndarray,
                      figs: _Figures) -> tuple[str, str, str]:
    if not findings:
        where = f" in {len(steps)} sampled steps (steps {steps[0]}–{steps[-1]})" if len(steps) else ""
        return ("findings", "Findings",
                f'<p class="ok" id="no-findings">No findings: no rule fired{esc(where)}.</p>')
    rows = []
    for f in findings[:MAX_TABLE_ROWS]:
        kind = f" <small>({esc(f.kind)})</small>" if f.kind != f.rule else ""
        rows.append([str(f.step), esc("" if f.epoch is None else f.epoch),
                     f'<span class="sev sev-{esc(f.severity)}">{esc(f.severity)}</span>',
                     f"<b>{_breakable(f.rule)}</b>{kind}", f'<span class="subject">{esc(f.subject or "—")}</span>',
                     esc(_num(f.value)), esc(_num(f.threshold)),
                     f'{esc(f.message)}<div class="fix">Try: {esc(f.suggestion)}</div>'])
    body = figs.add(plots.timeline_figure(findings, run.repeats),
                    "Each point is a finding, each band one that fired again (from its first to its last "
                    "occurrence); hover for the message and the count.")
    body += table(["step", "epoch", "severity", "rule", "subject", "value", "threshold", "message and what to try"],
                  rows, cls="findings", numeric={0, 1, 5, 6})
    if len(findings) > MAX_TABLE_ROWS:
        body += f'<p class="note">The first {MAX_TABLE_ROWS} of {len(findings)} findings are listed.</p>'
    return "findings", f"Findings ({len(findings)})", body


def _rules_section(run: Run, findings: Sequence[Finding], names: Sequence[str], steps: np.ndarray,
                   figs: _Figures) -> tuple[str, str, str] | None:
    if not findings:
        return None
    by_rule: dict[str, list[Finding]] = {}
    for f in findings:
        by_rule.setdefault(f.rule, []).append(f)
    repeats: dict[str, int] = {}
    for f in run.repeats:
        repeats[f.rule] = repeats.get(f.rule, 0) + 1
    body = ""
    for rule, group in by_rule.items():
        first, again = group[0], repeats.get(rule, 0)
        body += (f'<h3 id="rule-{esc(rule)}">{esc(rule)}'
                 + (f" <small>({esc(first.kind)})</small>" if first.kind != rule else "")
                 + f'</h3><p class="note">{len(group)} finding{"s" if len(group) > 1 else ""}'
                 + (f" and {again} repeat{'s' if again > 1 else ''} (fired again before it re-armed)" if again else "")
                 + f", first at step {first.step}: {esc(first.message)}</p>")
        panels = panels_for(group[:MAX_PER_RULE], run)  # a flapping rule re-fires; its first findings tell
        if not panels:
            body += '<p class="note">No recorded series behind this rule.</p>'
            continue
        notes = " ".join(p.note for p in panels if p.note)
        caption = f"{rule_figure.caption(panels)} {notes}".strip()
        body += figs.add(rule_figure.panels_figure(panels, group), esc(caption))
    return "rules", "Evidence per rule", body


def _heatmap_section(run: Run, findings: Sequence[Finding], names: Sequence[str], steps: np.ndarray,
                     figs: _Figures) -> tuple[str, str, str] | None:
    body = ""
    for name, log10, zrange, scale in plots.heatmap_series(names):
        made = plots.heatmap_figure(run, name, log10=log10, zrange=zrange, colorscale=scale)
        if made is None:
            continue
        fig, note = made
        what = f"log10 of {name} (gray: zero or not sampled)" if log10 else f"{name} (gray: not sampled)"
        body += f"<h3>{esc(name)}</h3>" + figs.add(fig, esc(f"Layer × step: {what}. {note}"))
    return ("heatmaps", "Layers × steps", body) if body else None


def _loss_section(run: Run, findings: Sequence[Finding], names: Sequence[str], steps: np.ndarray,
                  figs: _Figures) -> tuple[str, str, str] | None:
    fig = plots.loss_figure(run, findings, names)
    if fig is None:
        return None
    caption = "Diamonds and dotted lines: steps where a rule fired (color: severity; hover a diamond for the rule)."
    return "losses", "Loss", figs.add(fig, caption)


def _config_body(config: dict) -> str:
    text = yaml.safe_dump(config, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return ('<p class="note">As recorded for this run; secrets (webhook URL, headers, e-mail credentials) '
            f"were redacted before it was written.</p><pre>{esc(text)}</pre>")


def _breakable(name: str) -> str:
    """A rule name that may wrap after its underscores (``low_<wbr>variance``) in a narrow column."""
    return esc(name).replace("_", "_<wbr>")


def _num(value: float | None) -> str:
    if value is None:
        return "—"
    return str(value) if not math.isfinite(value) else f"{value:.4g}"
