"""The corpus report: one table of every entry (healthy runs with their findings and closest
margins, each followed by its twins with what fired), the summary lines, and in Markdown a
matrix of every default rule's margin on every healthy run.

Example:
    >>> from corpus.runner import Outcome
    >>> ok = Outcome("x/mlp", "lightning", None, "", [], "", seconds=3.0, margins=[
    ...     {"rule": "dead_relu", "limit": "threshold_layer", "scale": "linear", "margin": 0.3, "fired": None,
    ...      "note": ""}])
    >>> twin = Outcome("x/mlp+bias", "lightning", "x/mlp", "bias -20", ["dead_relu"], "", seconds=2.0,
    ...                findings=[{"rule": "dead_relu", "step": 20, "subject": "net.1", "value": 1.0,
    ...                           "threshold": 0.5, "message": ""}])
    >>> print(summary_lines([ok, twin]))
    healthy runs with 0 findings: 1 of 1
    twins where an expected rule fired: 1 of 1 (100%)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from corpus.judgements import judgement, miss
from corpus.runner import Outcome

#: the widest each column of the plain-text table gets (the Markdown keeps every cell whole)
TEXT_WIDTHS = (40, 4, 100, 90, 16)
HEADER = ("entry", "s", "findings of the default rules / fault planted", "closest margins / rules fired (step)",
          "verdict")


def rows(outcomes: Sequence[Outcome]) -> list[tuple[str, ...]]:
    """One row per entry: healthy runs in order, each followed by its twins."""
    order = [o for o in outcomes if not o.is_twin]
    order += [o for o in outcomes if o.is_twin and o.healthy not in {h.name for h in order}]
    out = []
    for healthy in order:
        out.append(_row(healthy))
        out += [_row(t) for t in outcomes if t.healthy == healthy.name]
    return out


def _row(o: Outcome) -> tuple[str, ...]:
    name = o.name if not o.is_twin else "  +" + o.name.split("+", 1)[1]
    secs = f"{o.seconds:.0f}"
    if o.error:
        blocked = f"blocked ({o.blocked.split(';')[0]}): " if o.blocked else ""
        return name, secs, f"{blocked}crashed: {o.error.splitlines()[0][:160]}", "", "ERROR"
    if not o.is_twin:
        verdict = "ok" if not o.findings else f"{len({f['rule'] for f in o.findings})} rule(s) fired"
        return name, secs, findings_text(o.findings) or "none", closest_margins(o.margins), verdict
    verdict = "caught" if o.caught else "MISSED"
    return name, secs, f"{o.fault} (expect {' or '.join(o.expect)})", fired_text(o), verdict


def fired_text(o: Outcome) -> str:
    """Each default rule that fired, with its first step: ``dead_relu@20, vanishing_gradient@40``."""
    return ", ".join(f"{rule}@{step}" for rule, step in o.first_steps().items()) or "nothing"


def findings_text(findings: Sequence[dict[str, Any]]) -> str:
    """Each finding as ``rule@step subject: value vs threshold``, joined by ``; ``."""
    parts = []
    for f in findings:
        subject = f" {_short(f['subject'])}" if f.get("subject") else ""
        parts.append(f"{f['rule']}@{f['step']}{subject}: {_value(f['value'])} vs {_value(f['threshold'])}")
    return "; ".join(parts)


def _short(subject: str, width: int = 60) -> str:
    return subject if len(subject) <= width else subject[:width - 1] + "…"


def _value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def limit_label(m: dict[str, Any]) -> str:
    """``rule.limit`` (``rule`` alone for the rules with one threshold)."""
    single = {"class_imbalance", "dead_relu", "not_normalized", "overfit", "overtraining", "small_updates",
              "sigmoid_saturation", "tanh_saturation", "token_ratio", "tree_depth", "unchanged_tensor"}
    return m["rule"] if m["rule"] in single else f"{m['rule']}.{m['limit']}"


def margin_text(m: dict[str, Any]) -> str:
    """A margin as the calibration shows it: ``12.3x`` (log scales), ``+0.25`` (linear), '-' for
    no data, 'never close' when no value fired; ``!`` marks a default that fired."""
    value = m.get("margin")
    if not isinstance(value, (int, float)):
        return {"no data": "-", "never close": "never close"}.get(m.get("note", ""), m.get("note") or "-")
    shown = f"{value:.3g}x" if m["scale"] == "log" else f"{value:+.3g}"
    return shown + ("!" if m.get("fired") is not None else "")


def closeness(m: dict[str, Any]) -> float:
    """How close a threshold came to firing, comparable across scales (smaller is closer): decades
    of room on log scales, room as a share of the threshold on linear ones."""
    value, current = m.get("margin"), m.get("current")
    if not isinstance(value, (int, float)):
        return math.inf
    if m["scale"] == "log":
        return math.log10(value) if value > 0 else -math.inf
    return value / abs(current) if isinstance(current, (int, float)) and current else value


def closest_margins(margins: Sequence[dict[str, Any]], n: int = 3) -> str:
    ranked = sorted((m for m in margins if math.isfinite(closeness(m)) or closeness(m) < 0), key=closeness)
    return ", ".join(f"{limit_label(m)} {margin_text(m)}" for m in ranked[:n])


def summary_lines(outcomes: Sequence[Outcome]) -> str:
    healthy = [o for o in outcomes if not o.is_twin]
    twins = [o for o in outcomes if o.is_twin]
    silent = sum(1 for o in healthy if not o.error and not o.findings)
    caught = sum(1 for o in twins if not o.error and o.caught)
    lines = [f"healthy runs with 0 findings: {silent} of {len(healthy)}"]
    share = f" ({100 * caught / len(twins):.0f}%)" if twins else ""
    lines.append(f"twins where an expected rule fired: {caught} of {len(twins)}{share}")
    crashed = [o.name for o in outcomes if o.error]
    if crashed:
        lines.append(f"crashed (counted as not silent / not caught): {', '.join(crashed)}")
    return "\n".join(lines)


def text_table(outcomes: Sequence[Outcome]) -> str:
    """The table in plain text, columns aligned, then the summary lines."""
    body = rows(outcomes)
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(HEADER)]
    widths = [min(w, width) for w, width in zip(widths, TEXT_WIDTHS)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(HEADER, widths)).rstrip()]
    lines += ["  ".join(_clip(c, w).ljust(w) for c, w in zip(r, widths)).rstrip() for r in body]
    return "\n".join(lines) + "\n\n" + summary_lines(outcomes)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def markdown(outcomes: Sequence[Outcome], preamble: str = "") -> str:
    """The table, the summary lines, the margin matrix and each entry's description, in Markdown."""
    out = [preamble] if preamble else []
    out += [_md_row(HEADER), "|" + "---|" * len(HEADER)]
    out += [_md_row(r) for r in rows(outcomes)]
    out += ["", *[line + "  " for line in summary_lines(outcomes).splitlines()], ""]
    healthy = [o for o in outcomes if not o.is_twin and o.margins]
    labels: list[str] = []
    for o in healthy:
        for m in o.margins:
            if limit_label(m) not in labels and m.get("note") != "no data":
                labels.append(limit_label(m))
    if labels:
        legend = ("`12.3x`: the default is 12.3 times more lenient than the strictest silent value (log scales); "
                  "`+0.25`: that much room (linear scales); `!`: the default fired; `never close`: silent at every "
                  "value tried; `-`: the run has no statistics for that rule.")
        out += ["### Margins of the default thresholds on the healthy runs", "", legend, ""]
        out += [_md_row(("entry", *labels)), "|" + "---|" * (len(labels) + 1)]
        for o in healthy:
            by = {limit_label(m): margin_text(m) for m in o.margins}
            out.append(_md_row((o.name, *(by.get(label, "-") for label in labels))))
        out.append("")
    findings = [o for o in outcomes if not o.is_twin and o.findings]
    if findings:
        out += ["### Findings on healthy runs, and what they are", ""]
        for o in findings:
            out.append(f"- **{o.name}**")
            for rule in dict.fromkeys(f["rule"] for f in o.findings):
                out.append(f"  - `{rule}`: {judgement(o.name, rule)}")
                out += [f"    - step {f['step']}: {f['message']}" for f in o.findings if f["rule"] == rule]
        out.append("")
    missed = [o for o in outcomes if o.is_twin and (o.error or not o.caught)]
    if missed:
        out += ["### Twins the expected rules missed, and why", ""]
        out += [f"- **{o.name}** (expected {' or '.join(o.expect)}; fired: {fired_text(o)}): {miss(o.name)}"
                for o in missed]
        out.append("")
    return "\n".join(out)
