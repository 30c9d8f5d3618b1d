"""``ftfast report``: one self-contained HTML page whose findings, tables and charts are the
API's (kvm.diagnose, sched.*, kvm.*, plot.*), every trace string escaped, every image a real
PNG inside the file, nothing fetched from outside; and the page rendered by headless Chromium
(skipped when Chromium is absent) with no broken image."""

import base64
import html
import io
import os
import re
import shutil
import struct
import subprocess
import sys
import warnings
from html.parser import HTMLParser

import numpy as np
import pytest

import ftrace_fast
from ftrace_fast import cli, kvm, report, sched
from helpers import DATA, corpus_dir

sys.path.insert(0, os.path.dirname(__file__))
import simkvm  # noqa: E402

SMP4 = DATA / "kvm_smp4_contended_small.txt.gz"
NO_SWITCH = DATA / "public" / "trappy-tests-tracecmd-sched-stat.txt"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _load(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ftrace_fast.load(str(path), warn=False)


def _main(capsys, *argv):
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


class Page(HTMLParser):
    """What the tests read from a page: the tables under each <h3 id>, the <img> sources, the
    finding items' text, every tag and attribute."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.tables = {}        # h3 id -> [[(text, title)]] (body rows)
        self.imgs = []
        self.tags = []          # (tag, attrs)
        self.findings = []      # text of each li.finding's <p>
        self._h3 = None
        self._rows = None
        self._cell = None
        self._in_p_of_finding = False
        self._finding_depth = 0
        self._buf = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "h3":
            self._h3 = a.get("id")
        elif tag == "table" and self._h3 and self._h3 not in self.tables:
            self._rows = self.tables[self._h3] = []
        elif tag == "tr" and self._rows is not None:
            self._rows.append([])
        elif tag == "td" and self._rows is not None:
            self._cell = [a.get("title")]
            self._buf = []
        elif tag == "img":
            self.imgs.append(a.get("src", ""))
        elif tag == "li" and "finding" in (a.get("class") or ""):
            self._finding_depth = 1
        elif tag == "p" and self._finding_depth:
            self._in_p_of_finding = True
            self._buf = []

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self._rows[-1].append(("".join(self._buf), self._cell[0]))
            self._cell = None
        elif tag == "table":
            if self._rows is not None:
                self.tables[self._h3] = [r for r in self._rows if r]
            self._rows = None
            self._h3 = None
        elif tag == "p" and self._in_p_of_finding:
            self.findings.append("".join(self._buf))
            self._in_p_of_finding = False
            self._finding_depth = 0

    def handle_data(self, data):
        self._buf.append(data)


def _png_size(data):
    assert data[:8] == PNG_MAGIC
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def _check_self_contained(text):
    """Every image a decodable PNG data URI; nothing loaded from anywhere else."""
    page = Page(text)
    assert page.imgs
    for src in page.imgs:
        assert src.startswith("data:image/png;base64,"), src[:60]
        png = base64.b64decode(src.split(",", 1)[1], validate=True)
        w, h = _png_size(png)
        assert w > 0 and h > 0
    for tag, a in page.tags:
        assert tag not in ("script", "link", "iframe", "object", "embed"), tag
        for k in ("src", "href"):
            if k not in a:
                continue
            v = a[k] or ""
            assert not re.match(r"\s*(https?:|//|file:|ftp:)", v, re.I), (tag, k, v)
            if k == "href":
                assert v.startswith("#"), v        # in-page links only
    assert "@import" not in text and "url(" not in text
    return page


@pytest.fixture(scope="module")
def smp4_page(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "smp4.html"
    assert cli.main(["report", str(SMP4), "-o", str(out), "-q"]) == 0
    return out.read_text(encoding="utf-8"), _load(SMP4)


def test_report_findings_and_tables_are_the_apis(smp4_page):
    text, t = smp4_page
    page = _check_self_contained(text)
    # findings: kvm.diagnose's, in its order
    found = [f for f in kvm.diagnose(t) if f["kind"] != "caveat"]
    assert len(found) >= 3
    assert page.findings == [f["explanation"] for f in found]
    for f in found:
        assert f'<span class="kind">{f["kind"]}</span>' in text
    for n in sched.caveats(t):
        assert html.escape(n) in text
    # the CPU table: exact ns in each busy cell's tooltip
    cs = sched.cpu_summary(t)
    rows = page.tables["t-cpus"]
    assert [int(r[0][0]) for r in rows] == cs["cpu"].tolist()
    assert [r[1][1] for r in rows] == [f"{v:,} ns" for v in cs["busy_ns"].tolist()]
    assert [r[1][0] for r in rows] == [f"{v / 1e6:,.3f}" for v in cs["busy_ns"].tolist()]
    # top 20 tasks by run time and by wait time
    ts = sched.task_summary(t)
    by_run = ts[np.lexsort((ts["pid"], -ts["run_ns"]))][:20]
    by_wait = ts[np.lexsort((ts["pid"], -ts["wait_ns"]))][:20]
    assert [int(r[0][0]) for r in page.tables["t-tasks"]] == by_run["pid"].tolist()
    assert [int(r[0][0]) for r in page.tables["t-tasks_wait"]] == by_wait["pid"].tolist()
    assert [r[4][1] for r in page.tables["t-tasks_wait"]] == \
        [f"{v:,} ns" for v in by_wait["wait_ns"].tolist()]
    assert f"(top 20 of {len(ts)})" in text
    # the latency table: latency_table's worst first
    lt = sched.latency_table(t, sort="max")
    lt = lt[lt["lat_count"] > 0]
    assert [int(r[0][0]) for r in page.tables["t-latency"]] == lt["pid"][:20].tolist()
    g = sched.latency_stats(sched.wakeup_latencies(t)["latency_ns"])
    assert f"All samples (sched_wakeup): count {g['count']}, mean " in text
    assert f", max {g['max_ns'] / 1e6:.3g} ms</p>" in text
    # vCPU threads
    vs = kvm.vcpu_summary(t)
    vrows = page.tables["t-kvm_vcpus"]
    assert [int(r[2][0]) for r in vrows] == vs["pid"].tolist()
    assert [r[6][0] for r in vrows] == [f"{v:,.1f}" for v in vs["steal_pct"].tolist()]
    # charts: the standard five (no kvm_exit in this trace), drawn
    ids = [a.get("id") for tag, a in page.tags if tag == "figure"]
    assert ids == ["chart-cpu-util", "chart-timeline", "chart-latency", "chart-switches",
                   "chart-wakeups"]
    assert len(page.imgs) == 5


def test_report_of_a_kvm_host_with_exits(tmp_path, capsys):
    sim = simkvm.simulate(3, "kernel5_tgid")
    src = tmp_path / "host.txt"
    src.write_bytes(sim.data)
    out = tmp_path / "host.html"
    rc, _, err = _main(capsys, "report", src, "-o", out, "--top", "0")
    assert rc == 0, err
    assert "kvm-exits" in err and "wrote" in err
    text = out.read_text(encoding="utf-8")
    page = _check_self_contained(text)
    assert "chart-kvm-exits" in [a.get("id") for tag, a in page.tags if tag == "figure"]
    t = ftrace_fast.load(io.BytesIO(sim.data))
    # the exit table: per VM and reason, the simulator's counts
    rows = page.tables["t-kvm_exits"]
    truth = {}
    for v in sim.kvm.vcpus.values():
        for r, n in v.exits.items():
            truth[r] = truth.get(r, 0) + n
    got = {}
    for r in rows:
        got[r[1][0]] = got.get(r[1][0], 0) + int(r[2][0].replace(",", ""))
    assert got == truth
    assert page.findings == [f["explanation"] for f in kvm.diagnose(t) if f["kind"] != "caveat"]
    # --top 0: every task
    assert len(page.tables["t-tasks"]) == len(sched.task_summary(t))


def test_report_filters_select_findings_rows_and_chart_tasks(tmp_path, capsys):
    out = tmp_path / "r.html"
    rc, _, err = _main(capsys, "report", SMP4, "-o", out, "--comm", "CPU 1/KVM", "--top", "5")
    assert rc == 0, err
    text = out.read_text(encoding="utf-8")
    page = Page(text)
    t = _load(SMP4)
    want = [f["explanation"] for f in kvm.diagnose(t)
            if f["kind"] != "caveat" and f["subject"].get("comm") == "CPU 1/KVM"]
    assert want and page.findings == want
    assert [r[2][0] for r in page.tables["t-tasks"]] == ["CPU 1/KVM"]
    assert "Selection: comm=CPU 1/KVM" in text


def test_report_escapes_every_trace_string(tmp_path, capsys):
    evil = '<img src=x>&"\''
    lines = []
    for i in range(40):
        ts = 100 + i * 0.001
        a, b = (evil, 1001) if i % 2 else ("bash", 1002)
        c, d = ("bash", 1002) if i % 2 else (evil, 1001)
        lines.append(f"{a}-{b} [000] d..2 {ts:.6f}: sched_switch: prev_comm={a} prev_pid={b} "
                     f"prev_prio=120 prev_state=R ==> next_comm={c} next_pid={d} next_prio=120")
        lines.append(f"{c}-{d} [000] d..2 {ts + 0.0002:.6f}: sched_waking: comm={a} pid={b} "
                     "prio=120 target_cpu=000")
    lines.append("not an ftrace line <script>alert(1)</script>")
    src = tmp_path / "evil <&>.txt"
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / "evil.html"
    rc, _, err = _main(capsys, "report", src, "-o", out)
    assert rc == 0, err
    text = out.read_text(encoding="utf-8")
    assert evil not in text and "<script>" not in text and "<img src=x>" not in text
    assert html.escape(evil, quote=True) in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text       # the malformed line, escaped
    assert "evil &lt;&amp;&gt;.txt" in text
    page = _check_self_contained(text)
    assert evil in [r[2][0] for r in page.tables["t-tasks"]]      # the name, whole


def test_report_without_sched_switch(tmp_path, capsys):
    out = tmp_path / "r.html"
    rc, _, err = _main(capsys, "report", NO_SWITCH, "-o", out)
    assert rc == 0, err
    text = out.read_text(encoding="utf-8")
    assert "The trace has no sched_switch events: the CPU, task and latency tables" in text
    assert "Not drawn: the trace has no sched_switch events." in text
    page = Page(text)
    assert "t-cpus" not in page.tables and "t-tasks" not in page.tables
    assert "t-wakeups" in page.tables or "t-switches" in page.tables


def test_report_of_a_kvm_host_without_sched_switch(tmp_path, capsys):
    """kvm_entry/kvm_exit only: the exit chart and the exit table, the rest noted."""
    sim = simkvm.simulate(3, "kernel5_tgid")
    only = tmp_path / "kvmonly.txt"
    only.write_bytes(b"".join(ln for ln in sim.data.splitlines(True) if b": sched_" not in ln))
    hosts = [only]
    c = corpus_dir()
    real = c / "tracecmd" / "hip24-kvm-host-20cpu-entry-exit.txt" if c else None
    if real is not None and real.exists():
        hosts.append(real)                 # a trace-cmd recording of a 3-vCPU host
    out = tmp_path / "r.html"
    for host in hosts:
        rc, _, err = _main(capsys, "report", host, "-o", out)
        assert rc == 0, err
        text = out.read_text(encoding="utf-8")
        page = _check_self_contained(text)
        ids = [a.get("id") for tag, a in page.tags if tag == "figure"]
        assert "chart-kvm-exits" in ids and len(page.imgs) == 1, host
        assert "Not drawn: the trace has no sched_switch events." in text
        counts = [int(r[2][0].replace(",", "")) for r in page.tables["t-kvm_exits"]]
        assert sum(counts) == len(kvm.exits(_load(host)).x_ts) > 0


def test_report_errors(tmp_path, capsys):
    out = tmp_path / "r.html"
    for argv, code, msg in (
            (("-o", tmp_path / "no" / "r.html"), 4, "no such directory"),
            (("-o", tmp_path), 4, "is a directory"),
            (("-o", out, "--top", "-1"), 2, "--top must be 0"),
            (("-o", out, "--steal-pct", "-3"), 2, "bad --steal-pct"),
            (("-o", out, "--comm", "("), 2, "bad --comm regex"),
            (("-o", out, "--start", "2", "--end", "1"), 2, "bad time range")):
        rc, _, err = _main(capsys, "report", SMP4, *argv)
        assert rc == code and msg in err and err.count("\n") == 1, (argv, err)
    rc, _, err = _main(capsys, "report", tmp_path / "missing.txt", "-o", out)
    assert rc == 3 and err.count("\n") == 1
    assert not out.exists()
    rc, text, err = _main(capsys, "report", SMP4, "-o", "-", "-q")
    assert rc == 0 and text.startswith("<!DOCTYPE html>") and err == ""


def test_render_is_deterministic_and_follows_the_data(smp4_page):
    text, t = smp4_page
    tables = [("cpus", "x", ["cpu", "busy_ns"], [{"cpu": 0, "busy_ns": 1234567}])]
    a = report.render(t, tables=tables)
    assert a == report.render(t, tables=tables)
    assert 'title="1,234,567 ns">1.235</td>' in a
    b = report.render(t, tables=[("cpus", "x", ["cpu", "busy_ns"], [{"cpu": 0, "busy_ns": 7}])])
    assert a != b and 'title="7 ns">0.000</td>' in b


# -- headless Chromium ---------------------------------------------------------------------------

_CHECK = """<script>
window.addEventListener("load", function () {
  var imgs = document.images, bad = [];
  for (var i = 0; i < imgs.length; i++) {
    if (!imgs[i].complete || imgs[i].naturalWidth === 0) bad.push(i);
  }
  var d = document.createElement("div");
  d.id = "ftfast-check";
  d.setAttribute("data-images", String(imgs.length));
  d.setAttribute("data-broken", bad.join(","));
  document.body.appendChild(d);
});
</script>"""


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_chromium_renders_every_image(smp4_page, tmp_path):
    """One Chromium run over a copy of the page with a check script and, after the report's
    own images, one broken image: the check must find exactly that one (so its silence about
    the others means something), and the screenshot shows the charts."""
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI"):
            # .ci/run installs Chromium: a CI machine without it would pass this test unseen
            pytest.fail("CI is set but Chromium is not installed (.ci/run installs Debian's "
                        "chromium package; apt-get install chromium)")
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium)")
    text, _ = smp4_page
    imgs = Page(text).imgs
    nimg = len(imgs)
    heights = [_png_size(base64.b64decode(s.split(",", 1)[1]))[1] for s in imgs]
    checked = tmp_path / "checked.html"
    checked.write_text(text.replace("</body>", '<img src="data:image/png;base64,AAAA">'
                                    + _CHECK + "</body>"), encoding="utf-8")
    shot = tmp_path / "shot.png"
    p = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                        f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars",
                        "--virtual-time-budget=5000", "--window-size=1280,16000",
                        f"--screenshot={shot}", "--dump-dom", checked.as_uri()],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    m = re.search(r'<div id="ftfast-check" data-images="(\d+)" data-broken="([\d,]*)">', p.stdout)
    assert m, p.stdout[-500:]
    assert (int(m.group(1)), m.group(2)) == (nimg + 1, str(nimg))
    # the screenshot: the charts take their room and put colour on the page (a page of broken
    # images is text and the severity badges only)
    from matplotlib.image import imread
    rgb = imread(shot)[..., :3]
    assert rgb.shape[:2] == (16000, 1280)
    inked = np.flatnonzero((rgb.min(axis=2) < 0.98).any(axis=1))
    assert inked[-1] - inked[0] > sum(heights)
    coloured = (rgb.max(axis=2) - rgb.min(axis=2)) > 0.3
    assert coloured.mean() > 0.01
