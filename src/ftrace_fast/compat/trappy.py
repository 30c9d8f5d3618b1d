"""trappy's API on ftrace_fast: change ``import trappy`` into
``from ftrace_fast.compat import trappy`` and a script's ``FTrace(...).sched_switch.data_frame``
comes from ``ftrace_fast.load()``.

Code that imports trappy's submodules (``from trappy.base import Base``) calls
:func:`install` once first: it makes ``import trappy`` and ``trappy.base``, ``trappy.ftrace``,
``trappy.dynamic`` ... resolve to this module.

What is the same as trappy 6.0.1
    ``FTrace``, ``SysTrace``, ``BareTrace``, the event attributes and their ``data_frame``:
    index ``Time`` (float seconds; a time equal to or before the previous line's is moved to the
    next float after it, as trappy does, so times are unique), ``__comm``, ``__pid``, ``__cpu``,
    ``__line`` (0 at the first event line), then the fields under trappy's names and types
    (``int(value, 0)`` gives an int, anything else a str; a column missing in some rows is float
    with NaN, or object).  ``basetime``, ``endtime``, ``get_duration()``, ``get_filters()``,
    ``class_definitions``, ``thermal_classes`` / ``sched_classes`` / ``dynamic_classes``,
    ``register_dynamic_ftrace`` / ``register_ftrace_parser`` and ``unregister_*``, ``window`` /
    ``abs_window``, ``normalize_time``, ``write_csv``, ``add_parsed_event``, ``apply_callbacks``,
    ``get_all_freqs_data``, the trace header's ``_version`` / ``_cpus`` (``metadata``).

Where it differs (on purpose)
    - Lines are read by ftrace_fast's parser: 5-character irq-info flags (kernel >= 5.15), the
      record-tgid column, latency format and comms holding spaces, dashes or brackets are read
      where trappy's line regex skips the line.  Events with an empty payload are kept; a
      truncated line of a typed event is counted malformed (``ftrace_fast.load(path).errors``)
      and gives no row, where trappy keeps a row of what it could split.
    - A class is chosen by the event's name: its ``unique_word`` must be part of ``"name:"``
      (``cpu_capacity:`` takes ``sched_cpu_capacity``), or of a leading ``word:`` of the text
      of a trace_printk / trace_marker line (print, bprint, bputs, tracing_mark_write:
      ``print: tracing_mark_write: cpu_frequency: ...``).
      trappy searches the whole line, so a comm or a payload naming another event sends a line
      to the wrong class; here it cannot.
    - Events ftrace_fast parses into typed columns (sched_switch, sched_wakeup, ...) take their
      values from those columns: a comm made of digits stays a str, ``prev_state`` is the
      kernel's letters (an int when the trace printed a number), a field the kernel did not
      print is no column, and neither is a field the layout does not know (Android's
      ``state=W`` in sched_wakeup).
    - ``funcgraph_entry`` / ``funcgraph_exit`` are ftrace_fast's function_graph records
      (depth, func, duration): the calltime / rettime / overrun of ``trace-cmd report -R`` are
      not columns.
    - No cache directory is written beside the trace (``disable_cache`` is accepted and
      ignored): ftrace_fast parses faster than trappy reads its CSV cache.
    - A ``.dat`` is converted with ``trace-cmd report`` as trappy does, without ``-r``.
    - Plotting (``LinePlot``, ``ILinePlot``, ``plot_*`` methods) raises NotImplementedError: use
      ``ftrace_fast.plot`` / ``ftfast chart``.
    - A line whose data starts with a bare word (not ``key=value``) makes trappy refuse the
      whole trace; here it gives one warning and its ``key=value`` words are kept.
    - Classes that override ``generate_data_dict`` (yours, and trappy's clock, ext4, f2fs and
      raw-syscall events) are parsed line by line through that method, as trappy does.
"""

from __future__ import annotations

import io
import itertools
import os
import re
import shutil
import subprocess
import sys
import tempfile
import warnings

import numpy as np

from . import WORD_VALUES, _kv, require_pandas

pd = require_pandas("ftrace_fast.compat.trappy")

from .. import events as _ev  # noqa: E402
from ..trace import load as _load  # noqa: E402

_PLOT_MSG = ("trappy's plotting is not part of ftrace_fast.compat.trappy: use ftrace_fast.plot "
             "(or the 'ftfast chart' command)")


class TrappyParseError(Exception):
    """trappy's parse error."""


class FTraceParseError(TrappyParseError):
    pass


def listify(to_select):
    return to_select if isinstance(to_select, list) else [to_select]


def trace_parser_explode_array(string, array_lengths):
    """``load={1 2}`` -> ``load0=1 load1=2`` (padded with ``=0`` up to array_lengths[name])."""
    def explode(m):
        name, vals = m.group(1), m.group(2).split(" ")
        vals += ["0"] * max(0, array_lengths.get(name, 0) - len(vals))
        return " ".join(f"{name}{i}={v}" for i, v in enumerate(vals))
    return re.sub(r"([^ ]+)={([^}]+)}", explode, string)


class _NoPlot:
    def __init__(self, *args, **kwargs):
        raise NotImplementedError(_PLOT_MSG)


LinePlot = ILinePlot = EventPlot = BarPlot = _NoPlot


class _Plotter:
    """``trappy.plotter``: every attribute is a class that refuses to plot."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _NoPlot


plotter = _Plotter()


def summary_plots(*args, **kwargs):
    raise NotImplementedError(_PLOT_MSG)


compare_runs = summary_plots


class Base:
    """One event's data: ``data_frame`` indexed by ``Time``.

    Subclass it with a ``unique_word`` (and optionally ``name``, ``pivot``) and register it
    with :func:`register_ftrace_parser`, as in trappy."""

    fallback_default = False

    def __init__(self, parse_raw=False, fallback=False):
        self.fallback = fallback
        self.tracer = None
        self.data_frame = pd.DataFrame()
        self.parse_raw = parse_raw
        self.cached = False

    @classmethod
    def string_cast_int(cls, string):
        try:
            return int(string, base=0)
        except ValueError:
            return string

    def generate_data_dict(self, data_str):
        """One line's data as trappy's dict (the slow path, for classes that override it)."""
        data_dict = {}
        prev_key = None
        for field in data_str.split():
            if "=" not in field:
                if not prev_key:
                    if "FAILED TO PARSE" in data_str:
                        _warn_failed(self.unique_word)
                        continue
                    raise TrappyParseError(
                        f"TRAPpy's parser for '{self.unique_word}' failed to parse the line:\n"
                        f"{data_str}")
                if isinstance(data_dict[prev_key], str):
                    data_dict[prev_key] += " " + field
                continue
            key, value = field.split("=", 1)
            data_dict[key] = self.string_cast_int(value)
            prev_key = key
        return data_dict

    def finalize_object(self):
        pass

    def write_csv(self, fname):
        self.data_frame.to_csv(fname)

    def read_csv(self, fname):
        self.data_frame = pd.read_csv(fname, index_col=0, converters={"Time": float})

    def normalize_time(self, basetime):
        if basetime and not self.data_frame.empty:
            df = self.data_frame
            df.index = pd.Index(np.asarray(df.index, dtype=float) - basetime, name="Time",
                                copy=False)

    def __getattr__(self, name):
        if name.startswith("plot"):
            raise NotImplementedError(_PLOT_MSG)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


def _warn_failed(unique_word):
    warnings.warn(f'trace-cmd failed to parse the "{unique_word}" event. You may need to compile '
                  "the latest trace-cmd and put it in your $PATH. Continuing, but some data may "
                  "be missing", stacklevel=3)


def _overrides_generate(cls):
    return getattr(cls, "generate_data_dict", None) is not Base.generate_data_dict


def _get_name(class_name):
    return re.sub("(?!^)([A-Z]+)", r"_\1", class_name).lower()


def default_init(self):
    kwords = {}
    if hasattr(self, "parse_raw"):
        kwords["parse_raw"] = self.parse_raw
    Base.__init__(self, **kwords)


def _new_class(class_name, unique_word, name, parse_raw=False, pivot=None, base=Base, **extra):
    body = {"__init__": default_init, "unique_word": unique_word, "name": name,
            "parse_raw": parse_raw, **extra}
    if pivot:
        body["pivot"] = pivot
    return type(str(class_name), (base,), body)


class BareTrace:
    """A set of events held as DataFrames (trappy's BareTrace)."""

    def __init__(self, name=""):
        self.name = name
        self.normalized_time = False
        self.class_definitions = {}
        self.trace_classes = []
        self.basetime = 0
        self.endtime = 0

    def get_duration(self):
        first, last = [], []
        for tc in self.trace_classes:
            if len(tc.data_frame.index):
                first.append(tc.data_frame.index[0])
                last.append(tc.data_frame.index[-1])
        if not first:
            return 0
        return max(last) - min(first)

    def get_filters(self, key=""):
        return [name for name in self.class_definitions if re.search(key, name)]

    def _normalize_time(self, basetime=None):
        if basetime is not None:
            self.basetime = basetime
        for tc in self.trace_classes:
            tc.normalize_time(self.basetime)
        self.normalized_time = True

    def add_parsed_event(self, name, dfr, pivot=None):
        if hasattr(self, name):
            raise ValueError(f"event {name} already present")
        cls = _new_class(name, name + ":", name)
        self.class_definitions[name] = cls
        event = cls()
        self.trace_classes.append(event)
        event.data_frame = dfr
        if pivot:
            event.pivot = pivot
        setattr(self, name, event)

    def finalize_objects(self):
        for tc in self.trace_classes:
            tc.tracer = self
            tc.finalize_object()

    def generate_data_dict(self, data_str):
        return None


# -- trappy's known events, as data ---------------------------------------------------------------

class _RenameBase(Base):
    renames = {}

    def finalize_object(self):
        if self.renames:
            self.data_frame = self.data_frame.rename(columns=self.renames)


class _CpuMaskBase(Base):
    """sched_load_avg_sg: the cpus mask as 8 characters, zero padded."""

    def finalize_object(self):
        if "cpus" in self.data_frame.columns:
            self.data_frame["cpus"] = self.data_frame["cpus"].astype(str).str.rjust(8, "0") \
                .astype(object)


class _CpuIdleBase(Base):
    """cpu_idle prints 4294967295 for -1 (leaving idle)."""

    def finalize_object(self):
        self.data_frame = self.data_frame.replace(2**32 - 1, -1)


class _FallbackBase(Base):
    """tracing_mark_write: the tracer's reading of the text (systrace's B|pid|func), else
    {'string': text}."""

    def __init__(self):
        Base.__init__(self, fallback=True)


class _ClkBase(Base):
    def generate_data_dict(self, data_str):
        clk_name, fields = (data_str.split(" ", 1) + [""])[:2]
        ret = Base.generate_data_dict(self, fields)
        ret["clk_name"] = clk_name
        return ret


class _Ext4Base(_RenameBase):
    renames = {"ino": "inode"}

    def generate_data_dict(self, data_str):
        data = data_str.split(" ")
        return dict(zip(data[0::2], data[1::2]))


class _F2fsBase(_RenameBase):
    renames = {"ino": "inode"}

    def generate_data_dict(self, data_str):
        data_str = data_str.replace("checkpoint is ", "checkpoint = ")
        return Base.generate_data_dict(self, data_str.replace(" = ", "=").replace(",", " "))


class _SysEnterBase(Base):
    _pat = re.compile(r"NR (\d+) \(" + ", ".join([r"([-+]?[\da-fA-F]+)"] * 6) + r"\)")

    def generate_data_dict(self, data_str):
        m = self._pat.search(data_str)
        if m is None:
            raise ValueError(f"failed to parse line {data_str}")
        d = {"nr": int(m.group(1))}
        d.update({f"arg{i}": int(m.group(i + 2), 16) for i in range(6)})
        return d


class _SysExitBase(Base):
    _pat = re.compile(r"NR ([-+]?\d+) = ([-+]?\d+)")

    def generate_data_dict(self, data_str):
        m = self._pat.search(data_str)
        if m is None:
            raise ValueError(f"failed to parse line {data_str}")
        return {"nr": int(m.group(1)), "ret": int(m.group(2))}


#: (class name, unique word, attribute name or None, scope, pivot, parse_raw, base, extra)
_KNOWN = (
    ("Thermal", "thermal_temperature:", "thermal", "thermal", "id", False, Base, {}),
    ("ThermalGovernor", "thermal_power_allocator:", "thermal_governor", "thermal",
     "thermal_zone_id", False, Base, {}),
    ("PIDController", "thermal_power_allocator_pid", "pid_controller", "thermal",
     "thermal_zone_id", False, Base, {}),
    ("CpuOutPower", "thermal_power_cpu_limit", "cpu_out_power", "thermal", "cpus", False, Base,
     {}),
    ("CpuInPower", "thermal_power_cpu_get_power", "cpu_in_power", "thermal", "cpus", False,
     Base, {}),
    ("DevfreqInPower", "thermal_power_devfreq_get_power:", "devfreq_in_power", "thermal", None,
     False, Base, {}),
    ("DevfreqOutPower", "thermal_power_devfreq_limit:", "devfreq_out_power", "thermal", None,
     False, Base, {}),
    ("SchedLoadAvgSchedGroup", "sched_load_avg_sg:", None, "sched", "cpus", False,
     _CpuMaskBase, {}),
    ("SchedLoadAvgTask", "sched_load_avg_task:", None, "sched", "pid", False, Base, {}),
    ("SchedLoadAvgCpu", "sched_load_avg_cpu:", None, "sched", "cpu", False, Base, {}),
    ("SchedContribScaleFactor", "sched_contrib_scale_f:", "sched_contrib_scale_factor", "sched", None, False, Base, {}),
    ("SchedCpuCapacity", "cpu_capacity:", None, "sched", "cpu", False, _RenameBase,
     {"renames": {"cpu_id": "cpu", "state": "capacity"}}),
    ("SchedWakeup", "sched_wakeup:", None, "sched", None, True, Base, {}),
    ("SchedWakeupNew", "sched_wakeup_new:", None, "sched", None, True, Base, {}),
    ("SchedSwitch", "sched_switch:", None, "sched", None, True, Base, {}),
    ("SchedCpuFrequency", "cpu_frequency:", None, "sched", "cpu", False, _RenameBase,
     {"renames": {"cpu_id": "cpu", "state": "frequency"}}),
    ("SchedMigrateTask", "sched_migrate_task:", None, "sched", None, False, Base, {}),
    ("CpuIdle", "cpu_idle", None, "all", "cpu_id", False, _CpuIdleBase, {}),
    ("CommonClkEnable", "clock_enable:", None, "all", None, False, _ClkBase, {}),
    ("CommonClkDisable", "clock_disable:", None, "all", None, False, _ClkBase, {}),
    ("CommonClkSetRate", "clock_set_rate:", None, "all", None, False, _ClkBase,
     {"finalize_object": lambda self: setattr(
         self, "data_frame", self.data_frame.rename(columns={"state": "rate"}))}),
    ("FilesystemExt4DaWriteBegin", "ext4_da_write_begin:", None, "all", None, False, _Ext4Base,
     {}),
    ("FilesystemExt4DaWriteEnd", "ext4_da_write_end:", None, "all", None, False, _Ext4Base, {}),
    ("FilesystemExt4SyncFileEnter", "ext4_sync_file_enter:", None, "all", None, False,
     _Ext4Base, {}),
    ("FilesystemExt4SyncFileExit", "ext4_sync_file_exit:", None, "all", None, False, _Ext4Base,
     {}),
    ("FilesystemF2FSWriteBegin", "f2fs_write_begin:", None, "all", None, False, _F2fsBase, {}),
    ("FilesystemF2FSWriteEnd", "f2fs_write_end:", None, "all", None, False, _F2fsBase, {}),
    ("FilesystemF2FSSyncFileEnter", "f2fs_sync_file_enter:", None, "all", None, False,
     _F2fsBase, {}),
    ("FilesystemF2FSSyncFileExit", "f2fs_sync_file_exit:", None, "all", None, False, _F2fsBase,
     {}),
    ("SysEnter", "sys_enter", None, "all", "pid", False, _SysEnterBase, {}),
    ("SysExit", "sys_exit", None, "all", "pid", False, _SysExitBase, {}),
    ("FunctionTracer", "function", None, "all", None, True, Base, {}),
    ("FuncgraphEntry", "funcgraph_entry", None, "all", None, True, Base, {}),
    ("FuncgraphExit", "funcgraph_exit", None, "all", None, True, Base, {}),
    ("TracingMarkWrite", "tracing_mark_write:", None, "all", None, False, _FallbackBase, {}),
)


def _pivot_with_labels(dfr, data_col, key_col, mapping_label):
    series = {}
    for key in pd.unique(dfr[key_col]):
        if key not in mapping_label:
            raise KeyError(f'"{key}" not found, available keys: {", ".join(mapping_label)}')
        series[mapping_label[key]] = dfr.loc[dfr[key_col] == key, data_col]
    return pd.DataFrame(series).ffill()


def _cpu_all_freqs(self, mapping_label):
    return _pivot_with_labels(self.data_frame, "freq", "cpus", mapping_label) / 1000


def _devfreq_all_freqs(self):
    return pd.DataFrame(self.data_frame["freq"] / 1000000)


_METHODS = {
    "CpuOutPower": {"get_all_freqs": _cpu_all_freqs},
    "CpuInPower": {"get_all_freqs": _cpu_all_freqs},
    "DevfreqInPower": {"get_all_freqs": _devfreq_all_freqs},
    "DevfreqOutPower": {"get_all_freqs": _devfreq_all_freqs},
}


class GenericFTrace(BareTrace):
    """The events of one ftrace text log (trappy's GenericFTrace): FTrace and SysTrace."""

    thermal_classes = {}
    sched_classes = {}
    dynamic_classes = {}
    disable_cache = False

    def __init__(self, name="", normalize_time=True, scope="all", events=[],
                 window=(0, None), abs_window=(0, None)):
        super().__init__(name)
        self._add_events(listify(events))
        if scope == "thermal":
            self.class_definitions.update(self.thermal_classes)
            self.class_definitions.update(self.dynamic_classes)
        elif scope == "sched":
            self.class_definitions.update(self.sched_classes)
            self.class_definitions.update(self.dynamic_classes)
        elif scope != "custom":
            self.class_definitions.update(self.thermal_classes)
            self.class_definitions.update(self.sched_classes)
            self.class_definitions.update(self.dynamic_classes)
        for c1, c2 in itertools.combinations(self.class_definitions.values(), 2):
            if c1.unique_word in c2.unique_word or c2.unique_word in c1.unique_word:
                raise RuntimeError(
                    "Events unique words must not be a substring of the unique word of another "
                    f'event: "{c1.unique_word}" {c1} and "{c2.unique_word}" {c2}')
        for attr, cls in self.class_definitions.items():
            obj = cls()
            setattr(self, attr, obj)
            self.trace_classes.append(obj)
        self.normalize_time = normalize_time
        self.window = window
        self.abs_window = abs_window
        self.max_window = (0, None)
        self._do_parse()

    # -- registration ---------------------------------------------------------------------------
    @classmethod
    def register_parser(cls, cobject, scope):
        if not hasattr(cobject, "name"):
            cobject.name = cobject.unique_word.split(":")[0]
        if scope == "all":
            cls.dynamic_classes[cobject.name] = cobject
        else:
            getattr(cls, scope + "_classes")[cobject.name] = cobject

    @classmethod
    def unregister_parser(cls, cobject):
        for scope_classes in (cls.thermal_classes, cls.sched_classes, cls.dynamic_classes):
            for name, obj in list(scope_classes.items()):
                if obj == cobject:
                    del scope_classes[name]

    def _add_events(self, events):
        known = {k: v for sc in (self.thermal_classes, self.sched_classes, self.dynamic_classes)
                 for k, v in sc.items()}
        for event_name in events:
            for cls in known.values():
                if event_name in (cls.unique_word, cls.name) or event_name + ":" == cls.unique_word:
                    self.class_definitions[cls.name] = cls
                    break
            else:
                self.class_definitions[event_name] = _new_class(event_name, event_name + ":",
                                                                event_name)

    def __getattr__(self, attr):
        if not (attr.startswith("__") and attr.endswith("__")):
            for name, cls in self.__dict__.get("class_definitions", {}).items():
                word = cls.unique_word.rstrip(":")
                if attr == word and name != word:
                    raise AttributeError(
                        f'You are trying to access "{self}.{attr}", instead you should access '
                        f'"{self}.{name}". A bug in TRAPpy used to make this work '
                        "non-deterministically, but that has now been fixed.")
            if attr.startswith("plot"):
                raise NotImplementedError(_PLOT_MSG)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {attr!r}")

    # -- parsing --------------------------------------------------------------------------------
    def _calc_max_window(self):
        lo = max(self.window[0] + self.basetime, self.abs_window[0])
        if self.window[1] is not None and self.abs_window[1] is not None:
            hi = max(self.window[1] + self.basetime, self.abs_window[1])
        elif self.window[1] is not None:
            hi = self.window[1] + self.basetime
        else:
            hi = self.abs_window[1]
        return [lo, hi]

    def _file_to_parse(self):
        return self.trace_path

    def _do_parse(self):
        path = self._file_to_parse()
        try:
            self._read_metadata(path)
            trace = _load(path, warn=False)
        finally:
            self._parsing_teardown(path)
        self._build(trace)
        self.finalize_objects()
        if self.normalize_time:
            self._normalize_time()

    def _parsing_teardown(self, path):
        pass

    def _read_metadata(self, path):
        pass

    def _build(self, trace):
        seq = _TimeSeq(trace)
        first_line = seq.first_line
        if first_line is None:
            self.basetime = 0
            self.endtime = 0
            self.lines = 0
            self.max_window = self._calc_max_window()
            return
        self.basetime = seq.basetime
        self.endtime = seq.endtime
        self.lines = int(seq.last_line - first_line + 1)
        self.max_window = self._calc_max_window()
        lo, hi = self.max_window
        routes = self._routes()
        parts = {}
        for ev, a in trace.events.items():
            if not len(a) or ev not in seq:
                continue
            routed = self._dispatch(trace, ev, a, routes)
            t_ev = seq.times(ev) if routed else None
            for attr, rows, data in routed:
                t = t_ev if len(rows) == len(t_ev) else t_ev[rows]
                # trappy slices the frame by label, both ends included
                keep = t >= lo
                if hi:
                    keep &= t <= hi
                if not keep.all():
                    rows = rows[keep]
                    data = None if data is None else data[keep]
                    t = t[keep]
                line = seq.lines(ev)
                line = line if len(rows) == len(line) else line[rows]
                parts.setdefault(attr, []).append((ev, rows, data, t, line - first_line))
        for attr, plist in parts.items():
            obj = getattr(self, attr)
            frames = [self._frame(obj, trace, ev, rows, data, t, line)
                      for ev, rows, data, t, line in plist]
            frames = [f for f in frames if len(f)]
            if not frames:
                continue
            df = frames[0] if len(frames) == 1 else pd.concat(frames).sort_values("__line")
            obj.data_frame = df

    def _routes(self):
        """[(attr, unique word without ':' / with, fallback)] in class order."""
        out = []
        for attr, cls in self.class_definitions.items():
            obj = getattr(self, attr)
            out.append((attr, cls.unique_word, bool(getattr(obj, "fallback", False))))
        return out

    @staticmethod
    def _match(word, routes):
        """attr of the class a ``word:`` names (non-fallback first), with its fallback flag."""
        key = word + ":"
        fb = None
        for attr, uw, fallback in routes:
            if uw in key:
                if not fallback:
                    return attr, False
                fb = fb or attr
        return (fb, True) if fb else (None, None)

    def _dispatch(self, trace, ev, a, routes):
        """[(attr, row indices, data start offsets or None)] for the rows of event ev."""
        layout = trace.layout(ev)
        n = len(a)
        own, own_fb = self._match(ev, routes)
        if layout not in ("generic", "text"):
            return [(own, np.arange(n), None)] if own else []
        if own is None and ev not in _PRINTK_EVENTS:
            return []
        field = "payload" if layout == "generic" else "text"
        buf, starts = _kv.gather(trace.text_arena, a[field + "_off"], a[field + "_len"])
        data_start, words = _kv.prefix_words(buf, starts)
        route = np.full(n, -1, np.int64)
        is_fb = np.ones(n, bool)
        attrs = [r[0] for r in routes]
        if own:
            route[:] = attrs.index(own)
            is_fb[:] = own_fb
        for rows, wbytes in words:
            u, inv = np.unique(wbytes, return_inverse=True)
            hit = np.full(len(u), -1, np.int64)
            hit_fb = np.ones(len(u), bool)
            for i, w in enumerate(u.tolist()):
                attr, fb = self._match(w.decode("utf-8", "replace"), routes)
                if attr:
                    hit[i] = attrs.index(attr)
                    hit_fb[i] = fb
            r_hit, r_fb = hit[inv.ravel()], hit_fb[inv.ravel()]
            # a non-fallback class beats a fallback one; a deeper word beats a shallower one
            take = (r_hit >= 0) & (~r_fb | is_fb[rows])
            route[rows[take]] = r_hit[take]
            is_fb[rows[take]] = r_fb[take]
        out = []
        for k in np.unique(route[route >= 0]).tolist():
            rows = np.flatnonzero(route == k)
            out.append((attrs[k], rows, _DataRef(buf, starts, data_start, rows)))
        return out

    def _frame(self, obj, trace, ev, rows, data, t, line):
        """The frame of rows of event ev: t their times, line their __line."""
        a = trace.events[ev]
        if len(rows) != len(a):
            a = a[rows]
        cols = {"__comm": _comm_objects(trace, a["comm"]),
                "__pid": a["pid"].astype(np.int64),
                "__cpu": a["cpu"].astype(np.int64),
                "__line": line}
        n = len(a)
        if data is None:
            cols.update(_typed_columns(trace, ev, a))
        else:
            cols.update(self._text_columns(obj, data, n))
        index = pd.Index(t, name="Time", copy=False)
        # object columns stay object (pandas 3 would make str columns of them, losing None)
        return pd.DataFrame({k: (pd.Series(v, index=index, dtype=object, copy=False)
                                 if v.dtype == object else v) for k, v in cols.items()},
                            index=index, copy=False)

    def _text_columns(self, obj, data, n):
        buf, starts, data_start = data.arrays()
        if isinstance(obj, _FallbackBase) or _overrides_generate(type(obj)):
            texts = _row_texts(buf, starts, data_start)
            if isinstance(obj, _FallbackBase):
                return self._marker_columns(texts)
            rows = [obj.generate_data_dict(s) for s in texts]
            df = pd.DataFrame.from_records(rows) if rows else pd.DataFrame()
            return {c: df[c].to_numpy() for c in df.columns}
        names, cols, failed = _kv.split(buf, starts, data_start)
        if len(failed):
            texts = _row_texts(buf, starts[failed], data_start[failed])
            bad = [s for s in texts if "FAILED TO PARSE" not in s]
            if bad:
                # trappy raises and reads nothing; the key=value words of these lines are kept
                warnings.warn(f"{self.trace_path}: {len(bad)} '{obj.unique_word}' line(s) are not "
                              f"key=value data (their bare words are dropped), e.g.: {bad[0][:120]}",
                              stacklevel=4)
            if len(bad) < len(texts):
                _warn_failed(obj.unique_word)
        return {k: _kv.column_values(cols[k], n) for k in names}

    def _marker_columns(self, texts):
        """tracing_mark_write: {'string': text} (SysTrace reads B|pid|func|data first)."""
        return {"string": np.array(texts, dtype=object)}


class _DataRef:
    """The payload rows of one class within an event's gathered buffer."""

    def __init__(self, buf, starts, data_start, rows):
        self.buf, self.starts, self.data_start, self.rows = buf, starts, data_start, rows

    def __getitem__(self, keep):
        return _DataRef(self.buf, self.starts, self.data_start, self.rows[keep])

    def arrays(self):
        if len(self.rows) == len(self.starts):
            return self.buf, self.starts, self.data_start
        ends = np.append(self.starts[1:], len(self.buf))
        s, e = self.starts[self.rows], ends[self.rows]
        lens = e - s
        newstart = np.zeros(len(lens), np.int64)
        if len(lens) > 1:
            np.cumsum(lens[:-1], out=newstart[1:])
        src = np.arange(int(lens.sum()), dtype=np.int64) + np.repeat(s - newstart, lens)
        return self.buf[src], newstart, self.data_start[self.rows] - s + newstart


def _row_texts(buf, starts, data_start):
    ends = np.append(starts[1:], len(buf)) - 1 if len(starts) else starts
    if len(starts) and not np.all(np.append(starts[1:], len(buf)) - 1 >= data_start):
        ends = np.maximum(ends, data_start)
    raw = bytes(buf)
    return [raw[s:e].decode("utf-8", "backslashreplace").rstrip()
            for s, e in zip(np.asarray(data_start).tolist(), np.asarray(ends).tolist())]


#: kernel print order of the typed layouts' fields, where it is not the layout's order
_PRINT_ORDER = {"sched_wake": ("task_comm", "task_pid", "prio", "success", "target_cpu")}


def _typed_columns(trace, ev, a):
    """Fields of a typed event under the kernel's names; a field absent from every line (-1)
    is no column."""
    layout = trace.layout(ev)
    kinds = _ev.field_kinds(layout)
    kernel = _ev.kernel_names(layout)
    out = {}
    for field in _PRINT_ORDER.get(layout, tuple(kinds)):
        kind = kinds[field]
        col = a[field]
        name = kernel.get(field, field)
        if kind == "comm":
            if len(col) and col[0] < 0 and (col < 0).all():
                continue
            out[name] = _comm_objects(trace, col)
        elif kind == "sym":
            if len(col) and col[0] < 0 and (col < 0).all():
                continue
            out[name] = _cast_symbols(trace, col)
        elif kind == "state":
            out[name] = _state_values(_kv.index_array(col))
        elif kind == "text":
            out[name] = np.array(trace.text(ev, field), dtype=object)
        elif kind == "u8":
            out[name] = col.astype(np.int64) if col.max(initial=0) < 2**63 else col
        else:
            col = col.astype(np.int64)
            if len(col) and col[0] == -1 and (col == -1).all():
                continue
            words = WORD_VALUES.get((layout, field))
            if words is not None and len(col) and ((col == 0) | (col == 1)).all():
                out[name] = np.array(words, dtype=object)[col]
                continue
            out[name] = col
    return out


def _cast_symbols(trace, col):
    """A symbol column read as trappy reads a value: int(v, 0) where it can (addresses like
    0xffffffffba5ddc00), else the str; each distinct symbol is converted once."""
    u, inv = np.unique(col, return_inverse=True)
    table = [Base.string_cast_int(trace.symbols[i]) if i >= 0 else "" for i in u.tolist()]
    if table and all(isinstance(v, int) for v in table):
        vals = np.array(table, dtype=object)[inv.ravel()]
        if all(-(2**63) <= v < 2**63 for v in table):
            return vals.astype(np.int64)
        if all(0 <= v < 2**64 for v in table):
            return vals.astype(np.uint64)
        return vals
    return np.array(table, dtype=object)[inv.ravel()]


def _state_values(col):
    """prev_state as printed: letters (R, S, D|K, R+), or the number a raw report printed;
    each distinct value is converted once and the rows read it from a table."""
    if not len(col):
        return np.zeros(0, object)
    lo, hi = int(col.min()), int(col.max())
    if lo >= 0 and hi < (1 << 20):
        present = np.flatnonzero(np.bincount(col)).tolist()
        table = np.empty(hi + 1, object)
        base = 0
    else:
        present = np.unique(col).tolist()
        table = np.empty(len(present), object)
        base = None
    for i, bits in enumerate(present):
        value = bits & 0xFF if bits & _ev.STATE_NUMERIC else _ev.state_string(bits)
        table[bits if base is not None else i] = value
    if base is not None:
        return table[_kv.index_array(col)]
    return table[np.searchsorted(np.asarray(present, dtype=col.dtype), col)]


def _comm_objects(trace, ids):
    """Comm strs of a column of comm ids (-1: ''), read from a table of the trace's comms."""
    table = np.empty(len(trace.comms) + 1, object)
    table[:-1] = trace.comms
    table[-1] = ""
    return table[_kv.index_array(ids)]  # -1 reads the last entry


#: the events whose text may stand for another event ("print: tracing_mark_write:
#: cpu_frequency: state=..." is a cpu_frequency line for trappy): trace_printk and trace_marker
_PRINTK_EVENTS = ("print", "bprint", "bputs", "tracing_mark_write")

#: events the parser names itself from lines with no ``name:`` word after the time stamp
#: (``=> frame`` lines, the kernel's function_graph columns): trappy's line regex misses them
_UNNAMED_EVENTS = ("stack_frame", "funcgraph_entry", "funcgraph_exit")


def _unnamed_rows(trace, ev, a):
    """Rows of the function tracer and stack traces written in the kernel's own form
    (``func <-parent``, ``<stack trace>``): trace-cmd prints ``function:`` / ``kernel_stack:``
    before the same events, and trappy sees only those."""
    if not len(a):
        return np.zeros(0, bool)
    buf, starts = _kv.gather(trace.text_arena, a["payload_off"], a["payload_len"])
    if ev == "function":
        # the kernel writes "func <-parent", trace-cmd "func" or "func <-- parent"
        arrow = np.flatnonzero((buf[:-2] == ord("<")) & (buf[1:-1] == ord("-")) &
                               (buf[2:] != ord("-")))
        rows = np.searchsorted(starts, arrow, side="right") - 1
        out = np.zeros(len(a), bool)
        out[rows] = True
        return out
    marker = b"<stack trace>" if ev == "kernel_stack" else b"<user stack trace>"
    same_len = a["payload_len"] == len(marker)
    head = _kv.fixed_bytes(buf, starts, starts + np.minimum(a["payload_len"], len(marker)),
                           len(marker))
    return same_len & (head == marker)


def _visible_rows(trace, ev, a, raw_syscalls):
    """Which rows of event ev trappy's line regex sees (a ``name:`` word with text after it):
    a bool array, or None when every row is seen."""
    if ev in _UNNAMED_EVENTS and not (ev.startswith("funcgraph") and
                                      not trace.format.get("funcgraph_lines")):
        # funcgraph_* events with no function_graph column lines come from named lines
        # ("funcgraph_entry: func=... depth=...", trace-cmd report -R)
        return np.zeros(len(a), bool)
    if trace.layout(ev) != "generic":
        return None
    vis = a["payload_len"] > 0
    if ev in ("function", "kernel_stack", "user_stack"):
        vis &= ~_unnamed_rows(trace, ev, a)
    elif ev.startswith("sys_enter_"):
        vis &= trace.text_arena[a["payload_off"]] != ord("(")
    elif ev.startswith("sys_exit_") and raw_syscalls:
        vis[:] = False
    return None if vis.all() else vis


class _TimeSeq:
    """trappy's float seconds of the event lines: the printed time (an integer time is ns),
    raised to the next float above the previous seen line's when it is not after it (trappy
    keeps times unique and in line order).  Lines trappy's regex does not see (no ``name:``
    word, or nothing after it) take no part in that sequence and keep their printed time.

    first_line / last_line: the first and last line of the sequence (None: no line);
    basetime / endtime: the least and greatest time of any row."""

    def __init__(self, trace):
        self._events = {}  # ev -> (its records, visible mask or None: every row)
        # the syscall tracer's own lines, "sys_x(args)" and "sys_x -> ret", name no event; the
        # parser calls them sys_enter_x / sys_exit_x.  An enter line in that form (payload
        # "(...") marks the trace's exit lines as that form too: the two cannot be told apart
        # otherwise.
        raw_syscalls = False
        for ev, a in trace.events.items():
            if ev.startswith("sys_enter_") and len(a) and trace.layout(ev) == "generic":
                raw_syscalls |= bool(a["payload_len"][0] > 0 and
                                     trace.text_arena[a["payload_off"][0]] == ord("("))
        hi = None
        n_vis = 0
        t_min, t_max = [], []
        for ev, a in trace.events.items():
            if not len(a):
                continue
            if a["ts"].min() < 0:
                continue  # lines without a time stamp: no trappy line
            vis = _visible_rows(trace, ev, a, raw_syscalls)
            self._events[ev] = (a, vis)
            top = int(a["line"].max())
            hi = top if hi is None else max(hi, top)
            if vis is None:
                n_vis += len(a)
            else:
                n_vis += int(np.count_nonzero(vis))
                if not vis.all():
                    hidden = a["ts"][~vis]
                    t_min.append(int(hidden.min()))
                    t_max.append(int(hidden.max()))
        self.first_line = self.last_line = None
        self._adj_line = self._adj_val = None
        self._by_line = None
        if hi is None:
            return
        # the seen lines' times in line order: one scatter into a table indexed by line (from
        # contiguous copies: numpy's fancy indexing is slow on the records' strided fields)
        table = np.full(hi + 1, -1, np.int64)
        for a, vis in self._events.values():
            line, ts = _kv.index_array(a["line"]), np.ascontiguousarray(a["ts"])
            if vis is not None:
                line, ts = line[vis], ts[vis]
            table[line] = ts
            del line, ts
        seen = table >= 0
        n_seen = int(np.count_nonzero(seen))
        if n_seen != n_vis:
            # a line held two seen rows: order them stably by line instead
            return self._by_sort(t_min, t_max)
        if not n_seen:
            lines = [a["line"] for a, _ in self._events.values()]
            self.first_line = min(int(x.min()) for x in lines)
            self.last_line = max(int(x.max()) for x in lines)
            self._set_span([], [], t_min, t_max)
            return
        first = int(seen.argmax())
        last = len(seen) - 1 - int(seen[::-1].argmax())
        # the seen lines are usually every line from the first to the last: then the table's
        # slice is the sequence, else the seen entries are gathered
        whole = last - first + 1 == n_seen
        sec = table[first:last + 1] if whole else table[seen]
        del table
        # ns -> float seconds in place: the int64 buffer becomes the float64 one
        np.divide(sec, 1e9, out=sec.view(np.float64))
        bits = sec
        if bits[0] > 0 and (bits[1:] > bits[:-1]).all():
            out = bits
        else:
            out = _unique_run(bits)
            ch = np.flatnonzero(out != bits)
            self._adj_line = ch + first if whole else np.flatnonzero(seen)[ch]
            self._adj_val = out[ch].view(np.float64)
        self.first_line, self.last_line = first, last
        self._set_span(out[:1].view(np.float64), out[-1:].view(np.float64), t_min, t_max)

    def _set_span(self, first, last, t_min, t_max):
        lows = list(first) + [t / 1e9 for t in t_min]
        highs = list(last) + [t / 1e9 for t in t_max]
        self.basetime = float(min(lows)) if lows else 0.0
        self.endtime = float(max(highs)) if highs else 0.0

    def _by_sort(self, t_min, t_max):
        names = list(self._events)
        lines = [self._events[ev][0]["line"] for ev in names]
        sizes = [len(x) for x in lines]
        line = np.concatenate(lines)
        sec = np.concatenate([self._events[ev][0]["ts"] for ev in names]) / 1e9
        vis = np.concatenate([np.ones(len(a), bool) if v is None else v
                              for a, v in self._events.values()])
        idx = np.flatnonzero(vis)
        order = idx[np.argsort(line[idx], kind="stable")]
        out = sec.copy()
        if len(order):
            out[order] = _unique_run(sec[order].view(np.int64)).view(np.float64)
            self.first_line = int(line[order[0]])
            self.last_line = int(line[order[-1]])
            self._set_span(out[order[:1]], out[order[-1:]], t_min, t_max)
        else:
            self.first_line, self.last_line = int(line.min()), int(line.max())
            self._set_span([], [], t_min, t_max)
        self._by_line = dict(zip(names, np.split(out, np.cumsum(sizes)[:-1])))

    def __contains__(self, ev):
        return ev in self._events

    def lines(self, ev):
        """The line numbers of every row of event ev."""
        return self._events[ev][0]["line"]

    def times(self, ev):
        """The times of every row of event ev (float seconds)."""
        if self._by_line is not None:
            return self._by_line[ev]
        a, vis = self._events[ev]
        t = a["ts"] / 1e9
        if self._adj_line is None:
            return t
        line = a["line"]
        if len(line) > 1 and not (line[1:] >= line[:-1]).all():
            j = np.searchsorted(self._adj_line, line)
            j[j == len(self._adj_line)] = 0
            hit = self._adj_line[j] == line
            if vis is not None:
                hit &= vis
            t[hit] = self._adj_val[j[hit]]
            return t
        r = np.searchsorted(line, self._adj_line)
        ok = r < len(line)
        r, k = r[ok], np.flatnonzero(ok)
        hit = line[r] == self._adj_line[k]
        if vis is not None:
            hit &= vis[r]
        t[r[hit]] = self._adj_val[k[hit]]
        return t


def _unique_run(bits):
    """out[i] = max(bits[i], out[i - 1] + 1) with out[-1] = 0.0: positive floats' bit patterns
    made strictly increasing by whole ulps (trappy's np.nextafter), as one running maximum."""
    k = np.arange(len(bits), dtype=np.int64)
    run = np.maximum.accumulate(np.concatenate(([1], bits - k)))[1:]
    return run + k


# -- the user-facing traces -----------------------------------------------------------------------

_HEADER_RE = re.compile(r"^\b(version|cpus)\b\s*=\s*([0-9]+)")
_EVENT_LINE_RE = re.compile(r"^\s*.*-\d+\s+(?:\(.*\)\s+)?\[\d+\]")


class FTrace(GenericFTrace):
    """trappy.FTrace: a trace.txt (the output of trace-cmd report or the kernel's trace file),
    a directory holding one, or a trace.dat (converted with trace-cmd report)."""

    def __init__(self, path=".", name="", normalize_time=True, scope="all", events=[],
                 window=(0, None), abs_window=(0, None)):
        self.raw_events = []
        self.trace_path = self._process_path(path)
        super().__init__(name, normalize_time, scope, events, window, abs_window)

    def _process_path(self, basepath):
        if os.path.isfile(basepath):
            stem, ext = os.path.splitext(basepath)
            if ext not in (".dat", ".txt"):
                self.read_from_dat = False
                return basepath
        else:
            stem = os.path.join(basepath, "trace")
        self.read_from_dat = False
        if os.path.isfile(stem + ".dat"):
            self.read_from_dat = True
            return stem + ".dat"
        if os.path.isfile(stem + ".txt"):
            return stem + ".txt"
        if os.path.isfile(stem + ".raw.txt"):
            raise RuntimeError(".raw.txt trace format is no longer supported")
        raise IOError(f"Could not find any trace file in {basepath}")

    def _file_to_parse(self):
        if not self.read_from_dat:
            return self.trace_path
        if shutil.which("trace-cmd") is None:
            raise OSError(2, f"{self.trace_path}: a trace.dat needs trace-cmd (not found in PATH) "
                             "to be read")
        fd, out = tempfile.mkstemp(suffix=".txt")
        with os.fdopen(fd, "wb") as fout:
            subprocess.run(["trace-cmd", "report", "-t", self.trace_path], stdout=fout,
                           stderr=subprocess.DEVNULL, check=True)
        return out

    def _parsing_teardown(self, path):
        if self.read_from_dat and path != self.trace_path:
            os.remove(path)

    def _read_metadata(self, path):
        keys = ["version", "cpus"]
        for key in keys:
            setattr(self, "_" + key, None)
        res = {}
        with io.open(path, "r", encoding="utf-8", errors="replace") as fin:
            for line in itertools.islice(fin, 10000):
                m = _HEADER_RE.search(line)
                if m and m.group(1) in keys:
                    res[m.group(1)] = m.group(2)
                    keys.remove(m.group(1))
                if not keys or _EVENT_LINE_RE.match(line):
                    break
        self.metadata = res
        for key, value in res.items():
            setattr(self, "_" + key, value)

    # trappy's thermal helpers
    def get_all_freqs_data(self, map_label):
        cpu_in = self.cpu_in_power.get_all_freqs(map_label)
        cpu_out = self.cpu_out_power.get_all_freqs(map_label)
        ret = []
        for label in map_label.values():
            dfr = pd.DataFrame({label + "_freq_in": cpu_in[label],
                                label + "_freq_out": cpu_out[label]}).ffill()
            ret.append((label, dfr))
        try:
            gin = self.devfreq_in_power.get_all_freqs()
            gout = self.devfreq_out_power.get_all_freqs()
        except (KeyError, AttributeError):
            gin = gout = None
        if gin is not None:
            ret.append(("GPU", pd.DataFrame({"gpu_freq_in": gin["freq"],
                                             "gpu_freq_out": gout["freq"]}).ffill()))
        return ret

    def apply_callbacks(self, fn_map):
        """Call fn_map[event](row dict) for every row of those events in line order (a Python
        call per row: it is the user's callback)."""
        dfs = {ev: getattr(self, ev).data_frame for ev in fn_map}
        dfs = {ev: df for ev, df in dfs.items() if not df.empty}
        if not dfs:
            return
        lines = np.concatenate([df["__line"].to_numpy() for df in dfs.values()])
        which = np.concatenate([np.full(len(df), i) for i, df in enumerate(dfs.values())])
        pos = np.concatenate([np.arange(len(df)) for df in dfs.values()])
        order = np.lexsort((pos, lines))
        rows = {ev: [dict(Index=idx, **rec) for idx, rec in zip(df.index, df.to_dict("records"))]
                for ev, df in dfs.items()}
        evs = list(dfs)
        for i in order.tolist():
            ev = evs[which[i]]
            fn_map[ev](rows[ev][pos[i]])


_SYSTRACE_EVENT = r"^(?P<event>[A-Z])(?:\|(?P<pid>\d+)\|(?P<func>[^|]*)(?:\|(?P<data>.*))?)?"


class SysTrace(GenericFTrace):
    """trappy.SysTrace: the ftrace text inside a systrace / catapult HTML file."""

    def __init__(self, path=".", name="", normalize_time=True, scope="all", events=[],
                 window=(0, None), abs_window=(0, None)):
        self.trace_path = path
        super().__init__(name, normalize_time, scope, events, window, abs_window)
        try:
            self._cpus = 1 + int(self.sched_switch.data_frame["__cpu"].max())
        except (AttributeError, KeyError, ValueError):
            pass

    def _marker_columns(self, texts):
        s = pd.Series(texts, dtype=object)
        got = s.str.extract(_SYSTRACE_EVENT)
        matched = got["event"].notna().to_numpy()
        if not matched.any():
            return {"string": np.array(texts, dtype=object)}
        out = {}
        ev = got["event"].astype(object).to_numpy()
        out["event"] = np.where(matched, ev, np.nan).astype(object)
        out["pid"] = pd.to_numeric(got["pid"], errors="coerce").to_numpy(dtype=float)
        for k in ("func", "data"):
            v = got[k].astype(object).to_numpy()
            out[k] = np.where(pd.isna(v), None, v).astype(object)
            out[k][~matched] = np.nan
        if not matched.all():
            out["string"] = np.where(matched, np.nan, np.array(texts, dtype=object)).astype(object)
        return out


def _register_known():
    for cname, uw, name, scope, pivot, raw, base, extra in _KNOWN:
        cls = _new_class(cname, uw, name or uw.rstrip(":"), raw, pivot, base,
                         **{**extra, **_METHODS.get(cname, {})})
        if issubclass(base, _FallbackBase):
            cls.__init__ = _FallbackBase.__init__
        GenericFTrace.register_parser(cls, scope)


_register_known()


def register_dynamic_ftrace(class_name, unique_word, scope="all", parse_raw=False, pivot=None):
    """A class for the event named by unique_word, registered and returned (trappy's API)."""
    cls = _new_class(class_name, unique_word, _get_name(class_name), parse_raw, pivot)
    GenericFTrace.register_parser(cls, scope)
    return cls


def register_ftrace_parser(cls, scope="all"):
    GenericFTrace.register_parser(cls, scope)


def unregister_ftrace_parser(ftrace_parser):
    GenericFTrace.unregister_parser(ftrace_parser)


unregister_dynamic_ftrace = unregister_ftrace_parser

# trappy's submodules (trappy.base.Base, trappy.ftrace.GenericFTrace, ...) all live here
base = ftrace = dynamic = exception = bare_trace = systrace = utils = sys.modules[__name__]
_SUBMODULES = ("base", "ftrace", "dynamic", "exception", "bare_trace", "systrace", "utils",
               "sched", "thermal", "cpu_power", "devfreq_power", "idle", "fallback",
               "filesystem", "common_clk", "raw_syscalls", "function", "function_graph",
               "pid_controller")


def install():
    """Make ``import trappy`` (and ``import trappy.base`` ...) give this module, for scripts
    that import trappy's submodules.  Returns the module."""
    me = sys.modules[__name__]
    sys.modules["trappy"] = me
    for sub in _SUBMODULES:
        sys.modules["trappy." + sub] = me
    sys.modules["trappy.plotter"] = plotter
    return me
