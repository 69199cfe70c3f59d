"""The HTML page: its sections, escaping, offline-ness, redaction, and size on large runs."""

from __future__ import annotations

import html
import json
import re
import time
from dataclasses import replace

import numpy as np
import pytest

from tripwire.finding import Finding
from tripwire.record import Run, RunRecord
from tripwire.report import ReportError, write_report
from tripwire.report.build import MAX_TABLE_ROWS
from tripwire.report.html import script_json
from tripwire.report.plots import MAX_COLUMNS, MAX_POINTS
from tripwire.run_end import RunEnd
from tripwire.stats import Sample


@pytest.fixture
def page(hostile_run):
    path = write_report(hostile_run)
    return path, path.read_text(encoding="utf-8")


def test_report_is_written_into_the_run_directory_by_default_or_where_asked(hostile_run, tmp_path):
    assert write_report(hostile_run) == hostile_run / "report.html"
    out = write_report(hostile_run / "record.sqlite", tmp_path / "out" / "r.html")
    assert out == tmp_path / "out" / "r.html" and out.stat().st_size > 1_000_000
    assert not list((tmp_path / "out").glob(".report-*"))  # no temporary file left behind


def test_page_has_every_section(page, data, figures):
    _, text = page
    for section in ("findings", "rules", "heatmaps", "losses", "config"):
        assert f'<section id="{section}">' in text
    assert "<h2>Findings (4)</h2>" in text
    for rule in ("dead_relu", "vanishing_gradient", "overfit", "grad_spike"):
        assert f'<h3 id="rule-{rule}">' in text
    assert "<h3>grad_norm</h3>" in text and f"<h3>{html.escape(data.DEAD)}</h3>" in text
    assert "framework: <b>torch</b>" in text
    # timeline, 4 rule figures, 2 heatmaps, losses; every figure has a placeholder
    figs = figures(text)
    assert len(figs) == 8
    assert all(f'<div class="plot" id="{f["id"]}"></div>' in text for f in figs)


def test_findings_table_rows_in_step_order_with_message_and_suggestion(page, hostile_run):
    _, text = page
    with Run(hostile_run) as run:
        findings = sorted(run.findings, key=lambda f: f.step)
    table = text[text.index('<table class="findings">'):text.index("</table>")]
    rows = re.findall(r"<tr>(.*?)</tr>", table)[1:]
    assert len(rows) == len(findings) == 4
    for row, f in zip(rows, findings):
        assert row.startswith(f'<td class="num">{f.step}</td>')
        assert f"<b>{html.escape(f.rule).replace('_', '_<wbr>')}</b>" in row
        assert html.escape(f.message) in row and html.escape(f.suggestion) in row
    assert '<span class="sev sev-error">error</span>' in table


def test_hostile_strings_appear_only_escaped(page, data):
    _, text = page
    for hostile in data.HOSTILE:
        assert hostile not in text
    assert text.count("<script") == 4  # boot, figure data, plotly, draw: nothing injected
    assert text.count("</script>") == 4
    for hostile in (data.SCRIPT_LAYER, data.IMG_LAYER, data.RUN_NAME):
        assert html.escape(hostile) in text  # shown to the reader, as text
    # inside the figure JSON the same names are escaped for plotly and for the script element
    payload = re.search(r'id="tw-figures">(.*?)</script>', text, re.S).group(1)
    assert "<" not in payload and ">" not in payload
    assert "\\u003cscript\\u003e" not in payload  # plotly gets &lt;script&gt;, which it draws literally
    assert "&lt;script&gt;document.body.setAttribute" in payload.replace("\\u0026", "&")


def test_figures_carry_the_evidence(page, figures, decode, data):
    _, text = page
    figs = {f["id"]: f["figure"] for f in figures(text)}
    dead = figs[re.search(r'<h3 id="rule-dead_relu">.*?<div class="plot" id="([^"]+)"', text, re.S).group(1)]
    assert [t["name"] for t in dead["data"]] == [html.escape(data.IMG_LAYER, quote=False), "act1", "act3",
                                                 "threshold 0.5"]
    assert decode(dead["data"][-1]["y"]).tolist() == [0.5, 0.5]
    assert decode(dead["data"][0]["y"]).max() == 0.9
    heat = next(f for f in figs.values() if f["data"][0]["type"] == "heatmap")
    z = np.asarray(decode(heat["data"][0]["z"])).reshape(len(heat["data"][0]["y"]), -1)
    assert np.nanmin(z) == pytest.approx(-9.0)  # log10 of the vanished 1e-9 gradient norms
    losses = figs[re.search(r'<section id="losses"><h2>Loss</h2><div class="plot" id="([^"]+)"', text).group(1)]
    assert [t["name"] for t in losses["data"]] == ["loss", "val_loss", "findings (error)", "findings (warning)"]
    assert len(decode(losses["data"][2]["x"])) + len(decode(losses["data"][3]["x"])) == 4  # a diamond per finding
    assert len(losses["layout"]["shapes"]) == 4  # and a dotted line


def test_config_is_shown_redacted(page):
    _, text = page
    config = text[text.index('<section id="config">'):]
    assert "SECRET-TOKEN" not in text
    assert "url: &lt;redacted&gt;" in config and "ratio: 0.5" in config


def test_page_fetches_nothing(page):
    _, text = page
    outside_scripts = re.sub(r"<script\b.*?</script>", "", text, flags=re.S)
    assert not re.search(r"<(link|img|iframe|object|embed)\b", outside_scripts)
    assert not re.search(r"\b(src|href)=\"(https?:)?//", outside_scripts)
    assert "@import" not in outside_scripts and "url(" not in outside_scripts


def test_quiet_run_says_no_findings(quiet_run, figures):
    text = write_report(quiet_run).read_text(encoding="utf-8")
    assert '<p class="ok" id="no-findings">No findings: no rule fired in 50 sampled steps (steps 10–500).</p>' in text
    assert '<section id="rules">' not in text and '<section id="losses">' in text
    assert len(figures(text)) == 2  # grad_norm heatmap and losses


def test_large_run_is_downsampled_and_keeps_its_spike(tmp_path, data, figures, decode):
    n, params = 20_000, [f"blocks.{i}.weight" for i in range(30)]
    rng = np.random.default_rng(1)
    samples = []
    for step in range(1, n + 1):
        s = Sample(step, step // 1000, {"loss": {None: 1.0 + 0.1 * rng.random()},
                                        "grad_global_norm": {None: 1e4 if step == 12_345 else 1.0}})
        if step % 10 == 0:
            s.add("grad_norm", {p: 0.1 + rng.random() for p in params})
        samples.append(s)
    spike = Finding("exploding_gradient", "exploding_gradient", 12_345, 12, "error", None, 1e4, 100.0,
                    "global gradient norm 1e4", "clip gradients")
    directory = data.write_run(tmp_path, samples, [spike], "big")
    start = time.perf_counter()
    text = write_report(directory).read_text(encoding="utf-8")
    elapsed = time.perf_counter() - start
    assert elapsed < 20, elapsed
    figs = figures(text)
    for fig in figs:
        for trace in fig["figure"]["data"]:
            if trace["type"] == "scatter":
                assert len(decode(trace["x"])) <= MAX_POINTS
    norm = next(f["figure"] for f in figs if any(t.get("name") == "grad_global_norm" for t in f["figure"]["data"]))
    line = next(t for t in norm["data"] if t["name"] == "grad_global_norm")
    assert decode(line["y"]).max() == 1e4  # a one-step spike survives downsampling
    heat = next(f["figure"] for f in figs if f["figure"]["data"][0]["type"] == "heatmap")
    assert len(decode(heat["data"][0]["x"])) == MAX_COLUMNS
    assert len(text) < 8_000_000


def test_missing_record_is_a_report_error(tmp_path):
    with pytest.raises(ReportError, match="no tripwire run record"):
        write_report(tmp_path)


def test_script_json_keeps_data_inside_its_script_element():
    text = json.dumps({"name": "</script><!--<script>\u2028&"}, ensure_ascii=False)
    safe = script_json(text)
    assert not set("<>&\u2028") & set(safe)
    assert json.loads(safe) == json.loads(text)


def test_empty_record_still_makes_a_page(tmp_path, data):
    text = write_report(data.write_run(tmp_path, [], [], "empty")).read_text(encoding="utf-8")
    assert '<p class="ok" id="no-findings">No findings: no rule fired.</p>' in text
    assert '<section id="config">' in text and not figures_in(text)


def test_a_flapping_rule_is_listed_up_to_a_limit(tmp_path, data):
    samples = [Sample(s, 0, {"grad_global_norm": {None: 1e6 if s % 20 else 1.0}}) for s in range(10, 30_010, 10)]
    flaps = [Finding("exploding_gradient", "exploding_gradient", s.step, 0, "error", None, 1e6, 1e3, "spike", "clip")
             for s in samples if s.scalar("grad_global_norm") > 1]
    assert len(flaps) > MAX_TABLE_ROWS
    text = write_report(data.write_run(tmp_path, samples, flaps, "flap")).read_text(encoding="utf-8")
    table = text[text.index('<table class="findings">'):text.index("</table>")]
    assert table.count("<tr>") == MAX_TABLE_ROWS + 1
    assert f"The first {MAX_TABLE_ROWS} of {len(flaps)} findings are listed." in text


def test_repeated_firings_are_one_band_per_finding_and_a_single_one_a_point(tmp_path, data, figures):
    samples = [Sample(s, 0, {"grad_global_norm": {None: 1.0}}) for s in range(0, 2000, 10)]
    spike = Finding("exploding_gradient", "exploding_gradient", 100, 0, "warning", None, 30.0, 10.0, "spike", "clip")
    dead = Finding("dead_relu", "dead_relu", 500, 0, "error", "fc1", 0.9, 0.5, "dead", "lower the LR")
    rec = RunRecord.create(tmp_path, None, run_name="bands")
    for s in samples:
        rec.add_sample(s)
    for f in (spike, replace(spike, step=700), dead):
        rec.add_finding(f)
    for step in range(110, 1900, 20):  # 90 repeats before the finding re-armed
        rec.add_finding(replace(spike, step=step), repeat=True)
    rec.close()
    timeline = figures(write_report(rec.directory).read_text(encoding="utf-8"))[0]["figure"]["data"]
    assert [(t["name"], t["x"]) for t in timeline] == [("error", [500, None]), ("warning", [100, 1890, None])]
    assert "fired 92 times, last at step 1890" in timeline[1]["hovertext"][0]
    text = (rec.directory / "report.html").read_text(encoding="utf-8")
    assert "2 findings and 90 repeats (fired again before it re-armed), first at step 100" in text
    assert "1 finding, first at step 500" in text  # dead_relu: no repeats, none told


def figures_in(text):
    return json.loads(re.search(r'id="tw-figures">(.*?)</script>', text, re.S).group(1))


@pytest.mark.parametrize(("end", "state", "says"), [
    (RunEnd("finished", step=40, at="2024-05-01T14:22:33+0000"), "finished",
     "Run finished; last sample at step 40 (ended 2024-05-01T14:22:33+0000)."),
    (RunEnd("stopped", step=30, rule="overfit", at="2024-05-01T14:22:33+0000"), "stopped",
     "Run stopped by rule overfit at step 30 (ended 2024-05-01T14:22:33+0000)."),
    (RunEnd("crashed", step=40, error="ValueError", at="2024-05-01T14:22:33+0000"), "crashed",
     "Run crashed: ValueError left training; last sample at step 40 (ended 2024-05-01T14:22:33+0000)."),
    (None, "in_progress", "Run in progress, last sample at step 40."),
    ("old", "unknown", "Run end state unknown (this record was written by a tripwire that did not keep it); "
                       "last sample at step 40."),
])
def test_the_header_says_how_the_run_ended(tmp_path, end, state, says):
    import sqlite3
    from contextlib import closing

    from tripwire.record import RunRecord

    rec = RunRecord.create(tmp_path, None, run_name="r")
    for step in (0, 20, 40):
        rec.add_sample(Sample(step=step, epoch=0, stats={"loss": {None: 1.0}}))
    rec.close(end=end if isinstance(end, RunEnd) else None)
    if end == "old":
        with closing(sqlite3.connect(rec.path)) as conn, conn:
            conn.execute("DELETE FROM meta WHERE key = 'end'")
    text = write_report(rec.directory).read_text(encoding="utf-8")
    assert f'<p id="run-end" class="end end-{state}">{html.escape(says)}</p>' in text


def _rule_figure(text, figures, rule):
    figs = {f["id"]: f["figure"] for f in figures(text)}
    return figs[re.search(rf'<h3 id="rule-{rule}">.*?<div class="plot" id="([^"]+)"', text, re.S).group(1)]


def test_not_normalized_draws_its_limits_on_log_axes_with_decade_ticks(zoo_run, figures):
    text = write_report(zoo_run).read_text(encoding="utf-8")
    fig = _rule_figure(text, figures, "not_normalized")
    layout = fig["layout"]
    limits = [(s["y0"], s["line"]["dash"], s["line"]["color"]) for s in layout["shapes"]]
    assert limits == [(3.0, "dash", "#c62828"), (0.01, "dash", "#c62828"), (10.0, "dash", "#c62828")]
    assert [a["text"] for a in layout["annotations"] if "limit" in a["text"]] == [
        "threshold: |mean| limit 3", "std lower limit 0.01", "std upper limit 10"]
    means, stds = layout["yaxis"], layout["yaxis2"]
    assert means["type"] == stds["type"] == "log"
    assert means["ticktext"][0] == "0" and "10<sup>5</sup>" in means["ticktext"]  # x's |mean| is 0: a zero row
    assert means["range"][1] >= 5  # the largest bar (1e5) is not cut off
    assert stds["range"][0] < -2 < 1 < stds["range"][1]  # both std limits inside the axis
    caption = text[text.index('<h3 id="rule-not_normalized">'):].split('<p class="caption">')[1].split("</p>")[0]
    assert caption.startswith("Dashed red: the threshold and the rule&#x27;s limits.") and "Dotted" not in caption
    row = text[text.index("<b>not_<wbr>normalized</b>"):].split("</tr>")[0]
    assert '<td class="num">1e+05</td><td class="num">3</td>' in row  # value and threshold: price's |mean|, limit


def test_step_axes_tick_whole_steps_and_all_zero_panels_span_zero_to_one(zoo_run, figures):
    text = write_report(zoo_run).read_text(encoding="utf-8")
    for figure in figures(text):
        for name, axis in figure["figure"]["layout"].items():
            if name.startswith("xaxis") and axis.get("title", {}).get("text") == "step":
                assert axis.get("tickformat") == "d", figure["id"]
    identical = _rule_figure(text, figures, "poor_initialization")["layout"]["yaxis2"]  # every value 0
    assert identical["range"][0] <= 0 and 1 <= identical["range"][1] < 1.2
