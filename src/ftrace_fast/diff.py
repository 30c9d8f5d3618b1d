"""``ftfast diff A B``: two traces (or two fleet stores) figure by figure.

Each side becomes the tables of the fleet store (``ftrace_fast.fleet``: a trace's are what
``ftfast stats --format json`` prints for it), and the same DuckDB queries sum them per entity:

tasks   per comm (pids differ between traces; threads sharing a comm are summed)
groups  per comm with every run of digits replaced by N (``kworker/N:N``, ``CPU N/KVM``)
vcpus   per (VM, vCPU number), with the time each neighbour (by comm) held its CPU while it
        waited as ``stolen_ns[<comm>]`` figures; VMs are matched by id when both sides have it,
        the others in order of id
cpus    per CPU number
exits   per (VM, exit reason)

Two stores are compared host by host (the host is part of every key).  Sums add up; a mean is
recomputed from its sums; a percentile of several tasks or traces is the largest of theirs
(an upper bound of the pooled one); a percentage is recomputed from its times.

Every figure of A and B is a row: ``a``, ``b``, ``change`` (b - a) and ``change_pct``
(change / a, null when a is 0).  Time figures (``*_ns``) are ranked by the size of their
change in time; other figures follow, by the size of their relative change.  A row whose
entity has fewer than ``min_samples`` samples (switches in for tasks, groups and vCPUs,
switches for CPUs, exits for exit reasons; wakeups for latency figures, timed exits for
handling times) in A or B is flagged ``few_samples`` and not ranked; an entity found on one
side only is flagged ``only_a`` / ``only_b``.
"""

from __future__ import annotations

import json
import math
import os

from .fleet import FleetError, documents, quick_exit, require, schema, tables_of

#: entity tables in ranking order for equal changes
DIFF_TABLES = ("tasks", "vcpus", "groups", "cpus", "exits")


def _is_store(path):
    if "://" in str(path):
        return True
    return os.path.isdir(path) and (os.path.isdir(os.path.join(path, "traces"))
                                    or os.path.isdir(os.path.join(path, "failures")))


def open_side(path):
    """(DuckDB connection with the store's views, 'store' or 'trace')."""
    import duckdb
    import pyarrow as pa
    from . import fleet_sql
    if _is_store(path):
        con = fleet_sql.connect(path)
        return con, "store"
    if os.path.isdir(path):
        raise FleetError(f"{path}: a directory that is not a fleet store (no traces/ in it)", 3)
    from . import cli
    try:
        t, doc, found = documents(path)
    except cli.CliError as exc:
        raise FleetError(str(exc), exc.code) from None
    rows = tables_of(t, doc, found, path=os.path.abspath(path), size=os.path.getsize(path))
    con = duckdb.connect(":memory:")
    names = {}
    for name, rs in rows.items():
        tbl = pa.Table.from_pylist([dict(r, host="", trace_id="-") for r in rs], schema=schema(name))
        con.register(f"_t_{name}", tbl)
        names[name] = f"_t_{name}"
    con.register("_t_failures", pa.Table.from_pylist([], schema=schema("failures")))
    names["failures"] = "_t_failures"
    return fleet_sql.connect(None, tables=names, con=con), "trace"


_TASK_FIGS = """count(*) AS threads, sum(run_ns) AS run_ns, sum(wait_ns) AS wait_ns,
    sum(sleep_ns) AS sleep_ns, sum(blocked_ns) AS blocked_ns, sum(other_sleep_ns) AS other_sleep_ns,
    sum(unknown_ns) AS unknown_ns, sum(switches_in) AS switches_in, sum(preemptions) AS preemptions,
    sum(wakeups) AS wakeups, sum(migrations) AS migrations, sum(lat_count) AS lat_count,
    sum(lat_mean_ns * lat_count) / nullif(sum(lat_count), 0) AS lat_mean_ns,
    max(lat_p99_ns) AS lat_p99_ns, max(lat_max_ns) AS lat_max_ns"""

QUERIES = {
    "tasks": (["comm"], f"SELECT host, comm, {_TASK_FIGS} FROM tasks GROUP BY host, comm"),
    "groups": (["group"], f"""SELECT host, regexp_replace(comm, '[0-9]+', 'N', 'g') AS "group", {_TASK_FIGS}
                             FROM tasks GROUP BY ALL"""),
    "vcpus": (["vm", "vcpu"], """SELECT host, vm, vcpu, count(*) AS threads, sum(run_ns) AS run_ns,
        sum(wait_ns) AS wait_ns, 100.0 * sum(wait_ns) / nullif(sum(run_ns) + sum(wait_ns), 0) AS steal_pct,
        sum(sleep_ns) AS sleep_ns, sum(blocked_ns) AS blocked_ns, sum(stacked_ns) AS stacked_ns,
        sum(guest_ns) AS guest_ns, sum(handling_ns) AS handling_ns, sum(exits) AS exits,
        sum(halts) AS halts, sum(switches_in) AS switches_in, sum(preemptions) AS preemptions,
        sum(lat_count) AS lat_count, max(lat_p99_ns) AS lat_p99_ns, max(lat_max_ns) AS lat_max_ns
        FROM vcpus GROUP BY host, vm, vcpu"""),
    "neighbours": (["vm", "vcpu", "comm"], """SELECT host, vm, vcpu, comm, sum(stolen_ns) AS stolen_ns
        FROM neighbours GROUP BY host, vm, vcpu, comm"""),
    "cpus": (["cpu"], """SELECT host, cpu, sum(busy_ns) AS busy_ns, sum(idle_ns) AS idle_ns,
        sum(unknown_ns) AS unknown_ns,
        100.0 * sum(busy_ns) / nullif(sum(busy_ns) + sum(idle_ns), 0) AS utilization_pct,
        sum(switches) AS switches, sum(irq_ns) AS irq_ns, sum(softirq_ns) AS softirq_ns
        FROM cpus GROUP BY host, cpu"""),
    "exits": (["vm", "reason"], """SELECT e.host, e.vm, e.reason, sum(e.count) AS count,
        sum(e.count) / nullif(sum(t.duration_ns) / 1e9, 0) AS rate_per_s, sum(e.handled) AS handled,
        sum(e.total_ns) AS total_ns, sum(e.total_ns) / nullif(sum(e.handled), 0) AS mean_ns,
        max(e.p99_ns) AS p99_ns, max(e.max_ns) AS max_ns, sum(e.switched_out) AS switched_out
        FROM vm_exits e JOIN traces t USING (host, trace_id)
        WHERE t.time_unit = 'ns' OR e.rate_per_s IS NULL GROUP BY e.host, e.vm, e.reason"""),
}

#: the count that says how many samples a figure rests on: {table: (default, {figure prefix: count})}
SAMPLES = {
    "tasks": ("switches_in", {"lat_": "lat_count"}),
    "groups": ("switches_in", {"lat_": "lat_count"}),
    "vcpus": ("switches_in", {"lat_": "lat_count"}),
    "cpus": ("switches", {}),
    "exits": ("count", {"mean_ns": "handled", "p99_ns": "handled", "max_ns": "handled",
                        "total_ns": "handled"}),
}


def _fetch(con, table):
    from .fleet_sql import rows
    return rows(con, QUERIES[table][1])


def _vm_labels(a_rows, b_rows):
    """{(host, vm of A)} and {(host, vm of B)} -> a shared label: the id when both sides have it,
    else 'A-id/B-id' for VMs paired in order of id."""
    la, lb = {}, {}
    hosts = {r["host"] for r in a_rows} | {r["host"] for r in b_rows}
    for h in hosts:
        va = sorted({r["vm"] for r in a_rows if r["host"] == h})
        vb = sorted({r["vm"] for r in b_rows if r["host"] == h})
        common = set(va) & set(vb)
        for v in common:
            la[(h, v)] = lb[(h, v)] = str(v)
        ra = [v for v in va if v not in common]
        rb = [v for v in vb if v not in common]
        for x, y in zip(ra, rb):
            la[(h, x)] = lb[(h, y)] = f"{x}/{y}"
        for x in ra[len(rb):]:
            la[(h, x)] = f"{x}/-"
        for y in rb[len(ra):]:
            lb[(h, y)] = f"-/{y}"
    return la, lb


def _unit(fig):
    if fig.endswith("_ns") or fig.startswith("stolen_ns["):
        return "ns"
    if fig.endswith("_pct"):
        return "pct"
    if fig.endswith("_per_s"):
        return "per_s"
    return "count"


def compare(con_a, con_b, *, by_host=False, min_samples=10):
    """The diff rows, ranked (see the module's docstring)."""
    ent = {}
    for side, con in (("a", con_a), ("b", con_b)):
        ent[side] = {t: _fetch(con, t) for t in QUERIES}
    vm_rows_a = ent["a"]["vcpus"] + ent["a"]["exits"]
    vm_rows_b = ent["b"]["vcpus"] + ent["b"]["exits"]
    if not by_host:
        for side in ("a", "b"):
            for rs in ent[side].values():
                for r in rs:
                    r["host"] = ""
    la, lb = _vm_labels(vm_rows_a, vm_rows_b)
    for side, lab in (("a", la), ("b", lb)):
        for t in ("vcpus", "exits", "neighbours"):
            for r in ent[side][t]:
                r["vm"] = lab.get((r["host"], r["vm"]), str(r["vm"]))
    # the neighbours' stolen time joins the vCPU rows as figures
    for side in ("a", "b"):
        byv = {(r["host"], r["vm"], r["vcpu"]): r for r in ent[side]["vcpus"]}
        for n in ent[side]["neighbours"]:
            v = byv.get((n["host"], n["vm"], n["vcpu"]))
            if v is not None:
                v[f"stolen_ns[{n['comm']}]"] = n["stolen_ns"]
    out = []
    for table in DIFF_TABLES:
        keys = QUERIES[table][0]
        ka = {(r["host"], *[r[k] for k in keys]): r for r in ent["a"][table]}
        kb = {(r["host"], *[r[k] for k in keys]): r for r in ent["b"][table]}
        base, special = SAMPLES[table]
        for key in sorted(set(ka) | set(kb), key=lambda k: tuple(str(x) for x in k)):
            ra, rb = ka.get(key), kb.get(key)
            figs = [f for f in (ra or rb) if f not in ("host", *keys)]
            for f in (rb or {}):
                if f not in figs and f not in ("host", *keys):
                    figs.append(f)
            keytext = " ".join(([f"host={key[0]}"] if by_host else []) +
                               [f"{k}={v}" for k, v in zip(keys, key[1:])])
            for f in figs:
                a = None if ra is None else ra.get(f, 0 if f.startswith("stolen_ns[") else None)
                b = None if rb is None else rb.get(f, 0 if f.startswith("stolen_ns[") else None)
                scol = next((c for p, c in special.items() if f.startswith(p)), base)
                sa = None if ra is None else ra.get(scol)
                sb = None if rb is None else rb.get(scol)
                flag = ""
                if ra is None:
                    flag = "only_b"
                elif rb is None:
                    flag = "only_a"
                elif min(sa or 0, sb or 0) < min_samples:
                    flag = "few_samples"
                change = b - a if a is not None and b is not None else None
                pct = 100.0 * change / a if change is not None and a else None
                out.append({"table": table, "key": keytext,
                            "key_fields": dict(zip(["host", *keys], key)) if by_host
                            else dict(zip(keys, key[1:])),
                            "figure": f, "unit": _unit(f), "a": _num(a), "b": _num(b),
                            "change": _num(change), "change_pct": _num(pct),
                            "samples_a": sa, "samples_b": sb, "flag": flag})
    order = {t: i for i, t in enumerate(DIFF_TABLES)}

    def rank_key(r):
        ranked_time = r["flag"] == "" and r["unit"] == "ns" and r["change"] is not None
        other = r["flag"] == "" and not ranked_time
        grp = 0 if ranked_time else 1 if other else 2 if r["flag"] == "few_samples" else 3
        size = abs(r["change"]) if ranked_time else abs(r["change_pct"]) if r["change_pct"] is not None \
            else abs(r["change"] or 0) if grp < 2 else abs(r["change"] or 0)
        return (grp, -size, order[r["table"]], r["key"], r["figure"])
    out.sort(key=rank_key)
    n = 0
    for r in out:
        if r["flag"] == "" and r["unit"] == "ns" and r["change"] is not None:
            n += 1
            r["rank"] = n
        else:
            r["rank"] = None
    return out


def _num(v):
    """A figure for JSON: NaN and infinities are null."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


COLUMNS = ["rank", "table", "key", "figure", "unit", "a", "b", "change", "change_pct", "samples_a",
           "samples_b", "flag"]


def _fmt(r, c):
    v = r[c]
    if v is None:
        return None
    if c in ("a", "b", "change") and r["unit"] == "ns":
        return f"{v / 1e6:,.3f}"
    if isinstance(v, float):
        return f"{v:,.1f}"
    return v


def write(out, rows, fmt, *, a, b, kinds, top=30, min_samples=10):
    if fmt == "json":
        doc = {"schema": 1, "a": {"path": a, "kind": kinds[0]}, "b": {"path": b, "kind": kinds[1]},
               "min_samples": min_samples, "rows": rows}
        json.dump(doc, out, indent=1, allow_nan=False)
        out.write("\n")
        return
    if fmt == "csv":
        import csv
        w = csv.writer(out, lineterminator="\n")
        w.writerow(COLUMNS)
        for r in rows:
            w.writerow(["" if r[c] is None else r[c] for c in COLUMNS])
        return
    from . import cli
    out.write(f"A: {a} ({kinds[0]})\nB: {b} ({kinds[1]})\n")
    cut = (lambda rs: rs[:top]) if top else (lambda rs: rs)
    time_rows = [r for r in rows if r["rank"] is not None and r["change"]]
    cols = ["rank", "table", "key", "figure", "a", "b", "change", "change_pct", "samples_a", "samples_b"]
    shown = cut(time_rows)
    cli._write_table(out, f"Largest changes in time (ms; {len(shown)} of {len(time_rows)} changed "
                          "time figures)", cols, [{c: _fmt(r, c) for c in cols} for r in shown])
    other = [r for r in rows if r["flag"] == "" and r["unit"] != "ns" and r["change"]]
    cols2 = ["table", "key", "figure", "unit", "a", "b", "change", "change_pct"]
    shown = cut(other)
    cli._write_table(out, f"Other figures by relative change ({len(shown)} of {len(other)} changed)",
                     cols2, [{c: _fmt(r, c) for c in cols2} for r in shown])
    few = {(r["table"], r["key"]) for r in rows if r["flag"] == "few_samples"}
    only_a = sorted({(r["table"], r["key"]) for r in rows if r["flag"] == "only_a"})
    only_b = sorted({(r["table"], r["key"]) for r in rows if r["flag"] == "only_b"})
    out.write(f"\nnot ranked: {len(few)} rows with fewer than {min_samples} samples in A or B")
    out.write("\n")
    for name, lst in (("only in A", only_a), ("only in B", only_b)):
        if lst:
            shown = ", ".join(f"{t} {k}" for t, k in lst[:12]) + (", ..." if len(lst) > 12 else "")
            out.write(f"{name} ({len(lst)}): {shown}\n")


def cmd_diff(args, out):
    require()
    quick_exit()
    if args.min_samples < 0:
        raise FleetError("--min-samples must be 0 or more")
    if args.top is not None and args.top < 0:
        raise FleetError("--top must be 0 (all) or more")
    con_a, ka = open_side(args.a)
    con_b, kb = open_side(args.b)
    if ka != kb:
        raise FleetError(f"diff compares two traces or two stores: {args.a} is a {ka}, {args.b} a {kb}")
    rows = compare(con_a, con_b, by_host=ka == "store", min_samples=args.min_samples)
    write(out, rows, args.format, a=args.a, b=args.b, kinds=(ka, kb),
          top=30 if args.top is None else args.top, min_samples=args.min_samples)
    return 0
