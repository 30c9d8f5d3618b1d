"""Start-up of the ``ftfast`` process: what a command imports, and the BLAS thread knobs set
before NumPy loads (issue 16).  Each case runs the entry point in a fresh interpreter."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import DATA

SMP2 = DATA / "kvm_smp2_small.txt.gz"
ROOT = Path(__file__).resolve().parent.parent
#: what no light command may import (each costs 0.1-1 s of start-up)
HEAVY = ("matplotlib", "pandas", "pyarrow", "duckdb", "dask", "distributed",
         "ftrace_fast.plot", "ftrace_fast.report", "ftrace_fast.export", "ftrace_fast.fleet",
         "ftrace_fast.fleet_sql", "ftrace_fast.diff", "ftrace_fast.guest")
BLAS_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

# Records the BLAS variables at the moment NumPy is first imported, runs `code`, then prints
# {"rc", "at_numpy", "modules"} as JSON on the last line of stderr.
PROBE = r"""
import importlib.abc, json, os, sys
seen = {}
class Watch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "numpy" and not seen:
            seen.update({v: os.environ.get(v) for v in %(vars)r})
        return None
sys.meta_path.insert(0, Watch())
rc = None
try:
    %(code)s
except SystemExit as exc:
    rc = exc.code
print(json.dumps({"rc": rc, "at_numpy": seen, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def probe(code, tmp_path, env_extra=None):
    env = {k: v for k, v in os.environ.items() if k not in BLAS_VARS}
    env["FTFAST_CACHE_DIR"] = str(tmp_path / "cache")
    env.update(env_extra or {})
    p = subprocess.run([sys.executable, "-c", PROBE % {"vars": BLAS_VARS, "code": code}],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    return p.stdout, json.loads(p.stderr.strip().splitlines()[-1])


def entry(*argv):
    return f"from ftrace_fast._entry import main; rc = main({list(argv)!r})"


@pytest.mark.parametrize("argv", [("info", str(SMP2)), ("stats", str(SMP2)),
                                  ("info", "--cache", str(SMP2))],
                         ids=["info", "stats", "info-cache"])
def test_light_commands_import_no_heavy_module(argv, tmp_path):
    code = entry(*argv)
    if "--cache" in argv:
        # the second run reads the arrays the first one stored
        code = f"{code}\n    {entry(*argv).replace('rc = ', 'rc2 = ')}"
    out, got = probe(code, tmp_path)
    assert got["rc"] == 0
    assert "cpus:" in out or "CPU" in out
    heavy = [m for m in got["modules"] if m.split(".")[0] in HEAVY or m in HEAVY]
    assert heavy == []
    # the knobs were in place before NumPy loaded, so OpenBLAS starts one thread
    assert got["at_numpy"] == {v: "1" for v in BLAS_VARS}
    if "--cache" in argv:
        assert any((tmp_path / "cache").iterdir())


def test_user_blas_setting_is_kept(tmp_path):
    _, got = probe(entry("info", str(SMP2)), tmp_path, {"OPENBLAS_NUM_THREADS": "2"})
    assert got["at_numpy"]["OPENBLAS_NUM_THREADS"] == "2"
    assert got["at_numpy"]["OMP_NUM_THREADS"] == "1"


def test_library_import_is_light_and_leaves_the_environment(tmp_path):
    code = ("import ftrace_fast\n    assert 'numpy' not in sys.modules\n"
            f"    t = ftrace_fast.load({str(SMP2)!r})\n    assert t.stats.events > 0\n"
            "    assert isinstance(ftrace_fast.events.__name__, str)")
    _, got = probe(code, tmp_path)
    assert got["rc"] is None
    assert got["at_numpy"] == {v: None for v in BLAS_VARS}


def test_module_run_and_script_go_through_the_entry(tmp_path):
    # python -m ftrace_fast runs __main__, which must call the entry, not cli.main directly
    code = ("import runpy\n    sys.argv = ['ftfast', 'info', " + repr(str(SMP2)) + "]\n"
            "    runpy.run_module('ftrace_fast', run_name='__main__')")
    _, got = probe(code, tmp_path)
    assert got["rc"] == 0 and got["at_numpy"] == {v: "1" for v in BLAS_VARS}
    tomllib = pytest.importorskip("tomllib")
    with open(ROOT / "pyproject.toml", "rb") as f:
        scripts = tomllib.load(f)["project"]["scripts"]
    assert scripts["ftfast"] == "ftrace_fast._entry:main"


def test_parser_choices_match_the_analyses():
    # the parser reads them from ftrace_fast.options so that it imports no analysis
    from ftrace_fast import kvm, options, plot
    assert tuple(plot.KINDS) == options.PLOT_KINDS
    assert kvm.Thresholds is options.Thresholds


@pytest.mark.parametrize("script", ["ftrace_stats.py", "ftrace_visualize.py"])
def test_skill_scripts_pin_blas_before_numpy(script, tmp_path):
    argv = [script, str(SMP2)] if script == "ftrace_stats.py" else [script, str(SMP2), "--help"]
    code = (f"import runpy\n    sys.argv = {argv!r}\n"
            f"    runpy.run_path({str(ROOT / 'scripts' / script)!r}, run_name='__main__')")
    _, got = probe(code, tmp_path)
    assert got["at_numpy"] == {v: "1" for v in BLAS_VARS}


def _sysfs(root, devices, order=None):
    """A fake /sys: devices are (name, device id, feature bits, driver bound)."""
    base = root / "bus" / "virtio" / "devices"
    for name, dev_id, bits, bound in devices:
        d = base / name
        d.mkdir(parents=True)
        (d / "device").write_text(f"0x{dev_id:04x}\n")
        (d / "features").write_text(bits + "\n")
        if bound:
            (d / "driver").mkdir()
    if order is not None:
        p = root / "module" / "page_reporting" / "parameters"
        p.mkdir(parents=True)
        (p / "page_reporting_order").write_text(f"{order}\n")
    return str(root)


REPORTING = "0110010100000000000000000000000010000000"   # bits 1, 2, 5, 7, 32
NO_REPORTING = "0110000100000000000000000000000010000000"


@pytest.mark.parametrize("devices, order, want", [
    ([("virtio0", 5, REPORTING, True)], None, True),
    ([("virtio0", 5, REPORTING, True)], 9, True),
    ([("virtio0", 5, REPORTING, True)], 10, False),      # only blocks past a huge page
    ([("virtio0", 5, NO_REPORTING, True)], None, False),
    ([("virtio0", 5, REPORTING, False)], None, False),   # no driver: nothing reports
    ([("virtio1", 2, REPORTING, True)], None, False),    # bit 5 of a block device
    ([("virtio1", 2, NO_REPORTING, True), ("virtio3", 5, REPORTING, True)], None, True),
    ([], None, False),
], ids=["reporting", "order-9", "order-10", "no-reporting", "unbound", "not-a-balloon",
        "second-device", "no-virtio"])
def test_free_page_reporting_is_read_from_sysfs(devices, order, want, tmp_path):
    from ftrace_fast import _entry
    assert _entry.free_pages_reported(_sysfs(tmp_path, devices, order)) is want


def test_numpy_huge_pages_off_only_where_reported_and_not_set(tmp_path, monkeypatch):
    from ftrace_fast import _entry
    on = _sysfs(tmp_path / "on", [("virtio0", 5, REPORTING, True)])
    off = _sysfs(tmp_path / "off", [("virtio0", 5, NO_REPORTING, True)])
    monkeypatch.delenv("NUMPY_MADVISE_HUGEPAGE", raising=False)
    _entry.numpy_huge_pages(off)
    assert "NUMPY_MADVISE_HUGEPAGE" not in os.environ
    _entry.numpy_huge_pages(on)
    assert os.environ["NUMPY_MADVISE_HUGEPAGE"] == "0"
    monkeypatch.setenv("NUMPY_MADVISE_HUGEPAGE", "1")   # the user's choice stays
    _entry.numpy_huge_pages(on)
    assert os.environ["NUMPY_MADVISE_HUGEPAGE"] == "1"


def test_the_entry_decides_numpy_huge_pages_before_numpy_loads(tmp_path):
    """main() reaches numpy_huge_pages before NumPy is imported (NumPy reads the variable
    once, at import): the probe sees the variable as this machine's sysfs decides it."""
    from ftrace_fast import _entry
    code = entry("info", str(SMP2))
    env = {k: v for k, v in os.environ.items() if k != "NUMPY_MADVISE_HUGEPAGE"}
    env["FTFAST_CACHE_DIR"] = str(tmp_path / "cache")
    p = subprocess.run([sys.executable, "-c", PROBE % {"vars": ("NUMPY_MADVISE_HUGEPAGE",),
                                                       "code": code}],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stderr.strip().splitlines()[-1])
    assert got["rc"] in (0, None)
    want = "0" if _entry.free_pages_reported() else None
    assert got["at_numpy"] == {"NUMPY_MADVISE_HUGEPAGE": want}


def _actions(parser):
    """Every option and positional of a parser and its subcommands' parsers, comparable."""
    import argparse
    out = []
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            out.append(("commands", tuple(a.choices),
                        tuple((c.dest, c.help) for c in a._choices_actions)))
            out += [(name, _actions(sub)) for name, sub in a.choices.items()]
        else:
            out.append((tuple(a.option_strings), a.dest, a.default, a.help,
                        tuple(a.choices) if a.choices else None, a.nargs))
    return out


def test_one_commands_parser_is_the_full_parsers_part():
    """The entry point builds only the options of the command that runs: the same command
    list and help as the full parser, and that command's own parser unchanged."""
    from ftrace_fast import cli
    full = cli.build_parser()
    want = dict(_actions(full)[3:])
    assert tuple(want) == cli.COMMANDS
    for name in cli.COMMANDS:
        got = _actions(cli.build_parser(only=name))
        assert got[:3] == _actions(full)[:3]            # --help, --version, the command list
        assert dict(got[3:])[name] == want[name], name
        # the others only as argparse makes every parser: its --help
        assert all(len(v) == 1 and v[0][0] == ("-h", "--help")
                   for n, v in got[3:] if n != name), name


@pytest.mark.parametrize("argv", [["--help"], ["stats", "--help"], ["fleet", "run", "--help"],
                                  ["nosuch"], []])
def test_help_and_unknown_commands_through_the_entry(argv, capsys):
    """ftfast --help lists every command, a command's --help its options; an unknown
    command is a usage error (2) that names the choices."""
    from ftrace_fast import cli
    with pytest.raises(SystemExit) as exc:
        rc = cli.main(argv)
        raise SystemExit(rc)
    out = capsys.readouterr()
    text = out.out + out.err
    if argv[-1:] == ["--help"]:
        assert exc.value.code == 0
        if argv == ["--help"]:
            assert all(name in text for name in cli.COMMANDS)
        elif argv[0] == "stats":
            assert "--switch-stats" in text and "--latency-sort" in text
        else:
            assert "--workers" in text or "--store" in text
    else:
        assert exc.value.code == 2
        if argv:
            assert "invalid choice" in text and "diagnose" in text
