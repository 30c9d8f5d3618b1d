"""DuckDB over a fleet store: the views, ``ftfast fleet report``'s rankings and ``ftfast fleet
query``.

Views
-----
One view per table of ``fleet.TABLES`` (columns and units there, and in README) plus
``failures``.  ``traces`` holds each committed trace once (the same content under two hosts:
the first host by name); every other view holds the rows of committed traces only, so a task
killed half way is never seen.

Rankings (``report``)
---------------------
steal      vCPU threads by steal % (wait / (run + wait)) among those that waited at least
           ``min_wait_ms``, with the three tasks that held their CPU longest while they waited.
hosts      hosts by the share of time with more runnable vCPU threads than CPUs (overcommit),
           then by the share of vCPU wait spent behind vCPUs of the same VM (stacking), with
           the VM that stacked most.
exits      (VM, exit reason) pairs whose rate per vCPU per second, or p99 handling time (at
           least ``min_exits`` timed exits), stands out against the same reason on every VM of
           the fleet: robust z-score z = 0.6745 (x - median) / MAD (Iglewicz and Hoaglin; when
           the MAD is 0, (x - median) / (1.2533 mean absolute deviation)); shown when
           z >= ``z_min`` (3.5) and the reason has at least 5 VMs to compare with.
latency    wakeup latency per host: count, mean and max exact; p50/p90/p99 of the pooled
           samples from the traces' histograms (the bucket's upper bound: at most 4.4% above the
           exact nearest-rank value), and the worst trace's exact p99.
findings   'diagnose' findings counted by host and kind, by severity.
failures   traces that could not be analysed.

Only traces with a nanosecond clock take part in the time rankings (integer-clock ticks are not
time).
"""

from __future__ import annotations

import json
import math
import os

from .fleet import FAILURES, TABLES, FleetError, Store, quick_exit, require

#: the report's sections in page order
SECTIONS = ("overview", "steal", "hosts", "exits", "latency", "findings", "failures")
SECTION_TITLES = {
    "overview": "The store",
    "steal": "Worst vCPUs by steal (wait / (run + wait)) and who took their CPU",
    "hosts": "Hosts by overcommit (more runnable vCPUs than CPUs) and stacking (vCPUs waiting "
             "behind vCPUs of their own VM)",
    "exits": "Exit reasons that stand out against the fleet (robust z-score: median and MAD of "
             "the same reason over every VM)",
    "latency": "Wakeup latency per host (percentiles of the pooled samples, to 4.4%)",
    "findings": "Findings of 'ftfast diagnose' by host and kind",
    "failures": "Traces that could not be analysed",
}
Z_MIN = 3.5


def _duck_type(code):
    return {"i": "BIGINT", "f": "DOUBLE", "s": "VARCHAR", "b": "BOOLEAN", "li": "BIGINT[]",
            "ls": "VARCHAR[]"}[code]


def _quote(s):
    return "'" + str(s).replace("'", "''") + "'"


def _empty(cols):
    return "SELECT " + ", ".join(f"CAST(NULL AS {_duck_type(t)}) AS {c}" for c, t, _ in cols) + " WHERE false"


#: the views the report reads and their columns it uses: each is read into memory once (and
#: only those columns), not scanned by every query that uses it
REPORT_VIEWS = {
    "traces": ("host", "trace_id", "bytes", "time_unit", "duration_ns", "ncpus", "vcpus", "findings",
               "overcommit_ns", "runnable_vcpus_mean", "runnable_vcpus_max", "vcpu_run_ns",
               "vcpu_wait_ns", "stacked_ns", "lat_count", "lat_mean_ns", "lat_p99_ns", "lat_max_ns"),
    "vcpus": ("host", "trace_id", "vm", "vcpu", "pid", "comm", "steal_pct", "wait_ns", "run_ns"),
    "neighbours": ("host", "trace_id", "vcpu_pid", "pid", "comm", "stolen_ns", "share_pct"),
    "vms": ("host", "trace_id", "vm", "vcpus", "stacked_ns"),
    "vm_exits": ("host", "trace_id", "vm", "reason", "count", "handled", "rate_per_s", "p99_ns"),
    "latency_hist": ("host", "trace_id", "bucket", "hi_ns", "count"),
    "findings": ("host", "trace_id", "kind", "severity", "score"),
    "failures": ("host", "trace_id", "path", "error"),
}


def connect(store_url, *, tables=None, con=None, must_exist=True, load=None):
    """A DuckDB connection with the store's views.  FleetError(3) when ``store_url`` is not a
    store (``must_exist``).  ``tables`` ({view: relation of ``con``}) builds the views over
    relations already in ``con`` instead (a trace's tables, for diff).  ``load`` ({view:
    columns}, e.g. :data:`REPORT_VIEWS`): those views become in-memory tables of only those
    columns, their files read once (most of a query's time over small partitions is opening
    and decoding them); without it ``traces`` is read whole into memory, the rest are views."""
    load = load or {}
    require()
    import duckdb
    store = Store(store_url) if tables is None else None
    con = con or duckdb.connect(":memory:")
    remote = store is not None and store.local_root() is None
    if remote:
        con.register_filesystem(store.fs)
    base = tables or {}

    def source(name, cols):
        if name in load:
            cols = [c for c in cols if c[0] in load[name]]
        if name in base:
            return f"SELECT * FROM {base[name]}"
        if store is None:
            return _empty(cols)
        if remote or any(ch in store.root for ch in "*?[]{}"):
            files = store.files(name)
            if remote:
                proto = store.fs.protocol if isinstance(store.fs.protocol, str) else store.fs.protocol[0]
                files = [f if "://" in f else f"{proto}://{f}" for f in files]
            first = files[0] if files else None
            lst = "[" + ", ".join(_quote(f) for f in files) + "]"
        else:
            # a local store: DuckDB lists the files itself; here only whether there is one
            first = store.first_file(name)
            lst = _quote(os.path.join(store.root, *store.pattern(name)))
        if first is None:
            return _empty(cols)
        # one schema for all the files of a table (the first file's: reading every footer to
        # unify them costs more than the report); a column the store's version of ftrace_fast
        # did not write yet is null
        have = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet({_quote(first)})").fetchall()}
        names = ", ".join(c if c in have else f"CAST(NULL AS {_duck_type(t)}) AS {c}" for c, t, _ in cols)
        return f"SELECT {names} FROM read_parquet({lst}, hive_partitioning=false)"

    def make(name, sql):
        kind = "TEMP TABLE" if name in load else "VIEW"
        con.execute(f"CREATE {kind} {name} AS {sql}")

    key_cols = [("host", "s", ""), ("trace_id", "s", "")]
    tr = source("traces", key_cols + TABLES["traces"][1])
    # read once: every other view and most report queries join with it
    con.execute(f"CREATE TEMP TABLE _traces AS SELECT * FROM ({tr}) QUALIFY row_number() OVER "
                "(PARTITION BY trace_id ORDER BY host) = 1")
    con.execute("CREATE VIEW traces AS SELECT * FROM _traces")
    for name, (_, cols) in TABLES.items():
        if name == "traces":
            continue
        make(name, f"SELECT * FROM ({source(name, key_cols + cols)}) "
                   "WHERE (host, trace_id) IN (SELECT host, trace_id FROM traces)")
    fl = source("failures", [("host", "s", "")] + FAILURES[1])
    # a failure of a path whose content is now in the store is history, not a failure
    make("failures", f"SELECT * FROM ({fl}) WHERE trace_id IS NULL OR "
                     "trace_id NOT IN (SELECT trace_id FROM traces)")
    if must_exist and tables is None:
        n = con.execute("SELECT (SELECT count(*) FROM traces) + (SELECT count(*) FROM failures)").fetchone()[0]
        if not n and not store.exists(store.join("traces")) and not store.exists(store.join("failures")):
            raise FleetError(f"{store_url}: not a fleet store (no traces/ or failures/ in it: "
                             "write one with 'ftfast fleet run')", 3)
    return con


def rows(con, sql, params=None):
    """[dict] of a query."""
    cur = con.execute(sql, params or [])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def _robust(metric, value_sql, where):
    """SQL of the robust z-scores of one metric over (host, trace, vm, reason) rows."""
    return f"""
      x AS (SELECT e.host, e.trace_id, e.vm, e.reason, e.count, e.handled, {value_sql} AS value
            FROM vm_exits e JOIN vms v USING (host, trace_id, vm) JOIN traces t USING (host, trace_id)
            WHERE t.time_unit = 'ns' AND {where}),
      m AS (SELECT reason, median(value) AS med, count(*) AS n FROM x GROUP BY reason),
      d AS (SELECT x.reason, median(abs(x.value - m.med)) AS mad, avg(abs(x.value - m.med)) AS meanad
            FROM x JOIN m USING (reason) GROUP BY x.reason)
      SELECT x.host, x.trace_id, x.vm, x.reason, '{metric}' AS metric, x.value, m.med AS fleet_median,
             m.n AS fleet_vms, x.count, x.handled,
             CASE WHEN d.mad > 0 THEN 0.6745 * (x.value - m.med) / d.mad
                  WHEN d.meanad > 0 THEN (x.value - m.med) / (1.2533 * d.meanad) END AS z
      FROM x JOIN m USING (reason) JOIN d USING (reason) WHERE m.n >= 5"""


def report(con, *, top=10, min_wait_ms=1.0, min_exits=20, z_min=Z_MIN):
    """{section: rows} of the fleet report (see the module's docstring)."""
    lim = f"LIMIT {int(top)}" if top else ""
    out = {}
    out["overview"] = rows(con, """
        SELECT (SELECT count(*) FROM traces) AS traces, (SELECT count(DISTINCT host) FROM traces) AS hosts,
               (SELECT coalesce(sum(bytes), 0) FROM traces) AS bytes,
               (SELECT coalesce(sum(duration_ns), 0) FROM traces WHERE time_unit = 'ns') AS traced_ns,
               (SELECT coalesce(sum(vcpus), 0) FROM traces) AS vcpus,
               (SELECT coalesce(sum(findings), 0) FROM traces) AS findings,
               (SELECT count(*) FROM failures) AS failures""")
    out["steal"] = rows(con, f"""
        WITH v AS (SELECT host, trace_id, vm, vcpu, pid, comm, steal_pct, wait_ns, run_ns FROM vcpus
                   WHERE wait_ns >= {float(min_wait_ms) * 1e6} AND steal_pct IS NOT NULL),
             nb AS (SELECT host, trace_id, vcpu_pid, pid, comm, stolen_ns, share_pct,
                           row_number() OVER (PARTITION BY host, trace_id, vcpu_pid
                                              ORDER BY stolen_ns DESC, pid) AS k FROM neighbours)
        SELECT v.host, v.vm, v.vcpu, v.pid, v.comm, v.steal_pct, v.wait_ns, v.run_ns,
               string_agg(nb.comm || ' (' || nb.pid || ') ' || CAST(round(nb.share_pct) AS BIGINT) || '%',
                          ', ' ORDER BY nb.k) AS took_cpu,
               arg_min(nb.comm, nb.k) AS top_comm, arg_min(nb.share_pct, nb.k) AS top_share_pct,
               v.trace_id
        FROM v LEFT JOIN nb ON nb.host = v.host AND nb.trace_id = v.trace_id AND nb.vcpu_pid = v.pid
                              AND nb.k <= 3
        GROUP BY ALL ORDER BY v.steal_pct DESC, v.wait_ns DESC, v.host, v.pid {lim}""")
    out["hosts"] = rows(con, f"""
        WITH t AS (SELECT * FROM traces WHERE time_unit = 'ns' AND vcpus > 0),
             sv AS (SELECT host, arg_max(vm, stacked_ns) AS stacked_vm, max(stacked_ns) AS stacked_vm_ns
                    FROM vms WHERE stacked_ns > 0 GROUP BY host)
        SELECT t.host, count(*) AS traces, max(t.ncpus) AS ncpus, max(t.vcpus) AS vcpus,
               100.0 * sum(t.overcommit_ns) / nullif(sum(t.duration_ns), 0) AS overcommit_pct,
               sum(t.runnable_vcpus_mean * t.duration_ns) / nullif(sum(t.duration_ns), 0) AS runnable_vcpus_mean,
               max(t.runnable_vcpus_max) AS runnable_vcpus_max,
               100.0 * sum(t.stacked_ns) / nullif(sum(t.vcpu_wait_ns), 0) AS stacked_pct,
               100.0 * sum(t.vcpu_wait_ns) / nullif(sum(t.vcpu_run_ns + t.vcpu_wait_ns), 0) AS steal_pct,
               any_value(sv.stacked_vm) AS stacked_vm, any_value(sv.stacked_vm_ns) AS stacked_vm_ns
        FROM t LEFT JOIN sv USING (host)
        GROUP BY t.host ORDER BY overcommit_pct DESC NULLS LAST, stacked_pct DESC NULLS LAST, t.host {lim}""")
    rate = _robust("rate_per_vcpu_s", "e.rate_per_s / greatest(v.vcpus, 1)", "e.rate_per_s IS NOT NULL")
    p99 = _robust("p99_ns", "CAST(e.p99_ns AS DOUBLE)", f"e.p99_ns IS NOT NULL AND e.handled >= {int(min_exits)}")
    out["exits"] = rows(con, f"""
        WITH r AS (WITH {rate}), p AS (WITH {p99})
        SELECT * FROM (SELECT * FROM r UNION ALL SELECT * FROM p)
        WHERE z >= {float(z_min)} ORDER BY z DESC, host, vm, reason, metric {lim}""")
    out["latency"] = rows(con, f"""
        WITH ns AS (SELECT host, trace_id FROM traces WHERE time_unit = 'ns'),
             h AS (SELECT l.host, l.bucket, any_value(l.hi_ns) AS hi, sum(l.count) AS n
                   FROM latency_hist l JOIN ns USING (host, trace_id) GROUP BY l.host, l.bucket),
             c AS (SELECT host, bucket, hi, sum(n) OVER (PARTITION BY host ORDER BY bucket) AS cum,
                          sum(n) OVER (PARTITION BY host) AS tot FROM h),
             q AS (SELECT host,
                          min(hi - 1) FILTER (WHERE cum >= greatest(ceil(tot * 0.50), 1)) AS p50_ns,
                          min(hi - 1) FILTER (WHERE cum >= greatest(ceil(tot * 0.90), 1)) AS p90_ns,
                          min(hi - 1) FILTER (WHERE cum >= greatest(ceil(tot * 0.99), 1)) AS p99_ns
                   FROM c GROUP BY host),
             e AS (SELECT host, sum(lat_count) AS count,
                          sum(lat_mean_ns * lat_count) / nullif(sum(lat_count), 0) AS mean_ns,
                          max(lat_max_ns) AS max_ns, max(lat_p99_ns) AS worst_trace_p99_ns,
                          count(*) AS traces
                   FROM traces WHERE time_unit = 'ns' AND lat_count > 0 GROUP BY host)
        SELECT e.host, e.traces, e.count, e.mean_ns, q.p50_ns, q.p90_ns, q.p99_ns, e.max_ns,
               e.worst_trace_p99_ns
        FROM e JOIN q USING (host) ORDER BY q.p99_ns DESC, e.max_ns DESC, e.host {lim}""")
    out["findings"] = rows(con, f"""
        SELECT host, kind, count(*) AS findings,
               count(*) FILTER (WHERE severity = 'high') AS high,
               count(*) FILTER (WHERE severity = 'medium') AS medium,
               count(*) FILTER (WHERE severity = 'low') AS low,
               max(score) AS max_score, count(DISTINCT trace_id) AS traces
        FROM findings WHERE kind <> 'caveat'
        GROUP BY host, kind ORDER BY high DESC, findings DESC, max_score DESC, host, kind {lim}""")
    out["failures"] = rows(con, f"SELECT host, path, error FROM failures ORDER BY host, path {lim}")
    return out


#: the columns each section shows in a table
COLUMNS = {
    "overview": ["traces", "hosts", "bytes", "traced_ns", "vcpus", "findings", "failures"],
    "steal": ["host", "vm", "vcpu", "pid", "comm", "steal_pct", "wait_ns", "run_ns", "took_cpu"],
    "hosts": ["host", "traces", "ncpus", "vcpus", "overcommit_pct", "runnable_vcpus_mean",
              "runnable_vcpus_max", "stacked_pct", "steal_pct", "stacked_vm"],
    "exits": ["host", "vm", "reason", "metric", "value", "fleet_median", "z", "fleet_vms", "count"],
    "latency": ["host", "traces", "count", "mean_ns", "p50_ns", "p90_ns", "p99_ns", "max_ns",
                "worst_trace_p99_ns"],
    "findings": ["host", "kind", "findings", "high", "medium", "low", "max_score", "traces"],
    "failures": ["host", "path", "error"],
}


def _plain(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if hasattr(v, "isoformat"):
        return v.isoformat()
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    return v


def write_report(out, sections, fmt, *, store_url, top):
    from . import cli
    if fmt == "json":
        doc = {"schema": 1, "store": store_url, "top": top, "z_min": Z_MIN,
               **{k: [{c: _plain(x) for c, x in r.items()} for r in v] for k, v in sections.items()}}
        json.dump(doc, out, indent=1, allow_nan=False)
        out.write("\n")
        return
    if fmt == "csv":
        for k in SECTIONS:
            cli._write_csv(out, k, list(sections[k][0]) if sections[k] else COLUMNS[k], sections[k])
        return
    if fmt == "html":
        out.write(html_page(sections, store_url=store_url))
        return
    ov = sections["overview"][0]
    out.write(f"fleet store {store_url}: {ov['traces']} traces from {ov['hosts']} hosts, "
              f"{ov['bytes'] / 1e6:,.1f} MB, {ov['vcpus']} vCPU threads, {ov['findings']} findings, "
              f"{ov['failures']} failures\n")
    for k in SECTIONS[1:]:
        rs = [{c: _cell_text(c, r.get(c)) for c in COLUMNS[k]} for r in sections[k]]
        cli._write_table(out, SECTION_TITLES[k] + ("; times in ms" if any(c.endswith("_ns") for c in COLUMNS[k]) else ""),
                         COLUMNS[k], rs)


def _cell_text(col, v):
    """A table cell: times in ms (3 decimals), percentages and scores to 1 decimal."""
    if v is None:
        return None
    if col.endswith("_ns") and isinstance(v, (int, float)):
        return f"{v / 1e6:,.3f}"
    if col == "value" and isinstance(v, float):
        return f"{v:,.1f}"
    if isinstance(v, float):
        return round(v, 1)
    return v


def html_page(sections, *, store_url):
    """The report as one self-contained page (the style of ``ftfast report``: inline CSS, no
    scripts; every string from the store escaped)."""
    from . import __version__
    from .report import _CSS, _e, _table
    title = f"ftrace fleet report: {store_url}"
    ov = sections["overview"][0]
    w = [f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
         f'<meta name="viewport" content="width=device-width, initial-scale=1">'
         f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
         f"<h1>{_e(title)}</h1>",
         f'<p class="note">Written by ftrace_fast {_e(__version__)} from the fleet store with DuckDB. '
         "Times are in milliseconds (hover a cell for the exact nanoseconds).</p>",
         "<nav>" + "".join(f'<a href="#{k}">{_e(k)}</a>' for k in SECTIONS) + "</nav>",
         '<h2 id="overview">The store</h2>',
         f'<p>{_e(ov["traces"])} traces from {_e(ov["hosts"])} hosts, {ov["bytes"] / 1e6:,.1f} MB, '
         f'{_e(ov["vcpus"])} vCPU threads, {_e(ov["findings"])} findings, {_e(ov["failures"])} failures.</p>']
    notes = {
        "exits": f"z = 0.6745 (x - median) / MAD over the same reason on every VM (at least 5); "
                 f"shown from z = {Z_MIN}. rate_per_vcpu_s: exits per second per vCPU; p99_ns: "
                 "handling time (kvm_exit to kvm_entry).",
        "latency": "count, mean and max are exact; p50/p90/p99 come from the pooled histogram "
                   "of every trace of the host (at most 4.4% above the exact value).",
    }
    for k in SECTIONS[1:]:
        w.append(f'<h2 id="{k}">{_e(SECTION_TITLES[k])}</h2>')
        if k in notes:
            w.append(f'<p class="note">{_e(notes[k])}</p>')
        rs = [{c: _plain(r.get(c)) for c in COLUMNS[k]} for r in sections[k]]
        w.append(_table(COLUMNS[k], rs, "ns"))
    w.append("</body></html>\n")
    return "".join(w)


def describe():
    """The views and their columns as text (``ftfast fleet query --schema``)."""
    lines = []
    key = [("host", "s", "host, from the trace's path"), ("trace_id", "s", "content hash of the trace")]
    for name, (doc, cols) in list(TABLES.items()) + [("failures", FAILURES)]:
        lines.append(f"{name}: {doc}")
        for c, t, d in (key[:1] if name == "failures" else key) + cols:
            lines.append(f"  {c:<22} {_duck_type(t):<10} {d}".rstrip())
        lines.append("")
    return "\n".join(lines)


def query(con, sql):
    """(column names, rows as tuples) of an ad hoc query; FleetError(2) on an SQL error."""
    import duckdb
    try:
        cur = con.execute(sql)
        if cur.description is None:
            return [], []
        names = [d[0] for d in cur.description]
        return names, cur.fetchall()
    except duckdb.Error as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FleetError(f"query: {msg}", 2) from None


def cmd_report(args, out):
    quick_exit()
    if args.top is not None and args.top < 0:
        raise FleetError("--top must be 0 (all) or more")
    con = connect(args.store, load=REPORT_VIEWS)
    top = 10 if args.top is None else args.top
    sections = report(con, top=top)
    write_report(out, sections, args.format, store_url=args.store, top=top)
    return 0


def cmd_query(args, out):
    quick_exit()
    from . import cli
    if args.schema:
        out.write(describe())
        return 0
    if not args.sql:
        raise FleetError("fleet query needs an SQL statement (or --schema)")
    con = connect(args.store)
    names, data = query(con, args.sql)
    recs = [{n: _plain(v) for n, v in zip(names, r)} for r in data]
    if args.format == "json":
        json.dump(recs, out, indent=1, allow_nan=False, default=str)
        out.write("\n")
    elif args.format == "csv":
        import csv
        w = csv.writer(out, lineterminator="\n")
        w.writerow(names)
        for r in recs:
            w.writerow(["" if r[n] is None else r[n] for n in names])
    else:
        cli._write_table(out, None, names, [{n: (v if isinstance(v, (int, float, str)) or v is None
                                                 else json.dumps(v, default=str)) for n, v in r.items()}
                                            for r in recs])
    return 0
