"""The report rendered by a real headless Chromium (Debian package ``chromium``).

The page marks ``<body data-tw-rendered="N">`` once plotly has drawn its N figures and
``data-tw-errors`` on any script error; the DOM is dumped after load and checked, and the
console log is searched for uncaught errors. A control page whose script throws proves the
check sees errors. Skipped when Chromium is not installed.
"""

from __future__ import annotations

import itertools
import re
import shutil
import struct
import subprocess

import pytest

from tripwire.report import write_report
from tripwire.report.html import Figure, Section, figure_div, page

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")


def chromium(url: str, profile, *args: str) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--host-resolver-rules=MAP * ~NOTFOUND",  # the page must need no network
           f"--user-data-dir={profile}", "--window-size=1280,2000", "--hide-scrollbars",
           "--virtual-time-budget=15000", "--enable-logging=stderr", "--v=0", *args, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)


def uncaught(log: str) -> list[str]:
    return [ln for ln in log.splitlines() if "Uncaught" in ln]


def rendered(run_dir, profile, figures) -> str:
    """Write the run's report, load it in Chromium, check every figure was drawn without a
    script error, and return the DOM."""
    path = write_report(run_dir)
    n_figures = len(figures(path.read_text(encoding="utf-8")))
    done = chromium(path.as_uri(), profile, "--dump-dom")
    dom = done.stdout
    body = re.search(r"<body[^>]*>", dom)
    assert body, f"no DOM dumped; chromium said:\n{done.stderr[-2000:]}"
    assert f'data-tw-rendered="{n_figures}"' in body.group(0), body.group(0)
    assert "data-tw-errors" not in body.group(0)
    assert not uncaught(done.stderr), uncaught(done.stderr)
    assert dom.count('class="plot-container plotly"') == n_figures  # plotly drew into each placeholder
    return dom


@pytest.fixture
def report(hostile_run):
    return write_report(hostile_run)


def test_report_with_hostile_names_renders_and_runs_none_of_them(hostile_run, tmp_path, figures):
    dom = rendered(hostile_run, tmp_path / "profile", figures)
    # no hostile name ran: none of them managed to set the attribute
    assert 'data-pwned="' not in dom
    # the hostile layer names are on the page, as text
    assert "&lt;script&gt;document.body.setAttribute('data-pwned','script')&lt;/script&gt;" in dom
    for section in ("Findings (4)", "Evidence per rule", "Layers × steps", "Loss", "Config"):
        assert f"<h2>{section}</h2>" in dom


def test_report_with_every_kind_of_plot_renders(zoo_run, tmp_path, figures):
    dom = rendered(zoo_run, tmp_path / "profile", figures)
    assert dom.count('<h3 id="rule-') >= 18
    assert dom.count('class="trace bars"') >= 3  # importance, input moments, initial gains (one value per layer)
    assert dom.count('class="hm"') == 3  # heatmaps: grad_norm, dead fraction, tanh saturation


def test_report_without_findings_renders(quiet_run, tmp_path, figures):
    dom = rendered(quiet_run, tmp_path / "profile", figures)
    assert 'id="no-findings"' in dom


def test_screenshot_of_the_report(report, tmp_path):
    path = report
    png = tmp_path / "report.png"
    done = chromium(path.as_uri(), tmp_path / "profile", f"--screenshot={png}")
    assert png.exists(), done.stderr[-2000:]
    head = png.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", head[16:24]) == (1280, 2000)
    # a blank page compresses to about 10 kB; drawn tables and plots are far larger
    assert png.stat().st_size > 100_000, png.stat().st_size


def test_the_check_sees_a_script_error(tmp_path):
    broken = tmp_path / "broken.html"
    figure = Figure("fig-1", '{"data": [], "layout": {}}')
    sections = [Section("s", "S", figure_div(figure), [figure])]
    broken.write_text(page("broken", [], sections, "throw new Error('boom from plotly')"), encoding="utf-8")
    done = chromium(broken.as_uri(), tmp_path / "profile", "--dump-dom")
    body = re.search(r"<body[^>]*>", done.stdout).group(0)
    assert "data-tw-rendered" not in body
    assert "boom from plotly" in body
    assert any("boom from plotly" in ln for ln in uncaught(done.stderr))


RED = (198, 40, 40)  # the threshold's color (#c62828); a warning finding is orange, so nothing else is red
ORANGE = (239, 108, 0)  # the "stopped" banner (#ef6c00)


def zero_variance_run(log_dir):
    """One warning: weights whose variance is 0 for 3 samples, against low_variance's 1e-10."""
    from tripwire import Monitor, Sample

    m = Monitor({"rules": {"low_variance": {"on": "weights", "actions": ["alert", "stop"]}}}, log_dir=log_dir,
                run_name="flat")
    for step in range(0, 60, 10):
        m.process(Sample(step=step, epoch=0, stats={"weight_var": {"fc3.weight": 0.0, "fc1.weight": 0.02}}))
    m.close(print_summary=False)
    return log_dir / "flat"


def rule_figure_dom(dom: str, rule: str) -> str:
    """The DOM plotly drew for one rule's evidence figure."""
    start = dom.index(f'<h3 id="rule-{rule}">')
    end = dom.find("<h3", start + 1)
    return dom[start:end if end > 0 else None]


def test_the_threshold_is_drawn_and_the_end_state_shown(tmp_path, figures):
    run_dir = zero_variance_run(tmp_path)
    dom = rendered(run_dir, tmp_path / "profile", figures)
    assert '<p id="run-end" class="end end-stopped">Run stopped by rule low_variance at step 20 (ended ' in dom
    drawn = rule_figure_dom(dom, "low_variance")
    # plotly drew a dashed red line (the 1e-10 threshold) and a "0" tick for the zero row below it
    assert re.search(r'class="js-line"[^>]*stroke: rgb\(198, 40, 40\)[^>]*stroke-dasharray', drawn), drawn[:2000]
    assert re.search(r'<text text-anchor="end"[^>]*data-unformatted="0"', drawn)  # a y tick


def test_screenshot_shows_the_threshold_line_and_the_end_banner(tmp_path):
    image = pytest.importorskip("PIL.Image")
    path = write_report(zero_variance_run(tmp_path))
    png = tmp_path / "flat.png"
    done = chromium(path.as_uri(), tmp_path / "profile", f"--screenshot={png}")
    assert png.exists(), done.stderr[-2000:]
    pixels = image.open(png).convert("RGB")
    width, height = pixels.size
    rows = [sum(1 for x in range(width) if _near(pixels.getpixel((x, y)), RED)) for y in range(height)]
    # a dashed horizontal line across the plot: one row with hundreds of red pixels, in dashes
    line = max(range(height), key=rows.__getitem__)
    assert rows[line] > 0.25 * width, rows[line]
    reds = [_near(pixels.getpixel((x, line)), RED) for x in range(width)]
    assert sum(1 for a, b in itertools.pairwise(reds) if a and not b) > 20  # dashes, not one solid bar
    header = [pixels.getpixel((x, y)) for x in range(0, width, 2) for y in range(0, 160, 2)]
    assert sum(_near(p, ORANGE) for p in header) > 500  # the "stopped" banner


def test_the_findings_table_fits_a_900_pixel_window(zoo_run, tmp_path):
    page_path = write_report(zoo_run)
    frame = tmp_path / "frame.html"
    frame.write_text(f'<!DOCTYPE html><html><body><iframe id="f" src="{page_path.as_uri()}" width="900" '
                     'height="1500"></iframe><script>document.getElementById("f").onload = function () {'
                     "var d = this.contentDocument; var t = d.querySelector('table.findings');"
                     "document.body.setAttribute('data-widths', d.documentElement.scrollWidth + ',' + t.scrollWidth);"
                     "};</script></body></html>", encoding="utf-8")
    done = chromium(frame.as_uri(), tmp_path / "profile", "--allow-file-access-from-files", "--dump-dom")
    widths = re.search(r'data-widths="(\d+),(\d+)"', done.stdout)
    assert widths, done.stdout[:500] + done.stderr[-2000:]
    page, table = map(int, widths.groups())
    assert page <= 900 and table <= 900, (page, table)


def _near(pixel, color, tolerance=30):
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, color))
