"""The JSON contract as a schema: docs/schema/{info,stats,diagnose}.schema.json (draft 2020-12).

Every ``ftfast info|stats|diagnose --format json`` document the tests produce is checked
against it (tests/helpers.check_json, called by test_cli.ok); here the three commands run over
every fixture of tests/data and over the simulators' traces of every text variant, the schema
is shown to reject renamed and mistyped keys, and docs/json-schema.md (the prose for humans) is
checked key by key against it."""

from __future__ import annotations

import copy
import fnmatch
import json
import re

import pytest

from ftrace_fast import cli

import simguest
import simkvm
import simsched
from helpers import DATA, SCHEMA_DIR, check_json, json_validator

FIXTURES = sorted(DATA.glob("*.txt.gz")) + sorted((DATA / "public").glob("*.txt"))
DOC = SCHEMA_DIR.parent / "json-schema.md"


def _json(capsys, command, path, *flags):
    rc = cli.main([command, str(path), "--format", "json", *map(str, flags)])
    out, err = capsys.readouterr()
    assert rc == 0, err
    return check_json(command, json.loads(out))


def _all_three(capsys, path):
    info = _json(capsys, "info", path)
    stats = _json(capsys, "stats", path)
    diag = _json(capsys, "diagnose", path)
    return info, stats, diag


def test_fixtures_exist():
    assert len(FIXTURES) >= 17, FIXTURES


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_every_fixture_follows_the_schema(capsys, path):
    info, stats, diag = _all_three(capsys, path)
    assert info["lines"]["total"] == sum(info["lines"][k] for k in ("events", "headers", "filtered",
                                                                    "malformed"))
    assert stats["source"]["time_unit"] == info["source"]["time_unit"] == diag["source"]["time_unit"]
    if "machines" in info:
        # a trace of several machines: each machine's stats document, on the trace's one clock
        assert stats["source"]["machines"] == diag["source"]["machines"] == \
            [m["machine"] for m in info["machines"]]
        assert sorted(stats["machines"]) + sorted(stats.get("errors", ())) == sorted(stats["source"]["machines"])
        assert all(d["source"]["machine"] == name and d["source"]["time_unit"] == info["source"]["time_unit"]
                   for name, d in stats["machines"].items())


@pytest.mark.parametrize("flags", [
    ("--kvm", "--comm", "CPU", "--cpu", "0", "--start", "0.1", "--end", "2000"),
    ("--latency", "--latency-from", "waking", "--latency-sort", "count", "--pid", "1-99999"),
    ("--wakeup-stats", "--wakeups-from", "wakeup", "--switch-stats", "--migrations", "--tgid", "11947"),
    ("--events", "sched_switch,sched_wakeup", "--task-stats", "--cpu-stats", "--sort", "wait_ns"),
])
def test_filtered_documents_follow_the_schema(capsys, flags):
    """Non-null filters, the other latency and wakeup sources, a --tgid selection."""
    path = DATA / "kvm_smp4_contended_small.txt.gz"
    d = _json(capsys, "stats", path, *flags)
    assert any(v is not None for v in d["filters"].values())


def test_filtered_diagnose_follows_the_schema(capsys):
    path = DATA / "kvm_smp4_contended_small.txt.gz"
    d = _json(capsys, "diagnose", path, "--comm", "KVM", "--cpu", "1", "--start", "1001.9", "--top", "3")
    assert d["filters"]["cpus"] == [1] and len(d["findings"]) <= 3


@pytest.mark.parametrize("variant", sorted(simsched.VARIANTS))
def test_simulated_traces_follow_the_schema(capsys, tmp_path, variant):
    """The KVM simulator (exits with reasons, halts, kvm_vcpu_wakeup, block requests, vhost) and
    the scheduling simulator with lost events and missing switch-ins, in every text variant."""
    k = simkvm.simulate(seed=2, variant=variant, missing_idle=True)
    kp = tmp_path / "kvm.txt"
    k.write(kp)
    info, stats, diag = _all_three(capsys, kp)
    assert stats["kvm"]["vcpus"] and any(r["exits"] for r in stats["kvm"]["vcpus"])
    thresholds = ("--steal-pct", "1", "--min-wait-ms", "0", "--exit-rate", "10", "--exit-p99-us", "1",
                  "--min-exits", "1", "--io-blocked-pct", "1", "--stack-pct", "1", "--overcommit-pct", "1",
                  "--block-p99-ms", "0.001", "--wakeup-p99-us", "1")
    diag = _json(capsys, "diagnose", kp, *thresholds)
    # time thresholds do not apply to tick clocks
    assert len({f["kind"] for f in diag["findings"]}) >= (5 if info["source"]["time_unit"] == "ns" else 3)
    s = simsched.simulate(seed=3, variant=variant, lost=True, missing_idle=True)
    sp = tmp_path / "sched.txt"
    s.write(sp)
    info, stats, diag = _all_three(capsys, sp)
    assert info["lost"] and stats["caveats"]


# -- the schema can fail ----------------------------------------------------------------------

def _paths(doc, prefix=()):
    """(path, value) of every key of every object in a document."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield prefix + (k,), v
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc[:2]):
            yield from _paths(v, prefix + (i,))


def _trim(doc, key=None):
    """A document cut to one row per list and one entry per map: each mutation is then
    validated in a moment."""
    if isinstance(doc, list):
        # the machines of a trace of several: at least two
        return [_trim(v) for v in (doc if key == "machines" else doc[:1])]
    if isinstance(doc, dict):
        items = list(doc.items())[:1] if key in _OPEN else doc.items()
        return {k: _trim(v, k) for k, v in items}
    return doc


def _at(doc, path):
    for k in path[:-1]:
        doc = doc[k]
    return doc


# map keys: their names are data (a reason, an event, a CPU number, a count of vCPUs, a machine)
_OPEN = {"events", "exits", "time_by_count", "cpus", "machines", "errors", "guest"}
# keys a document may leave out: the stats sections not asked for
_OPTIONAL = {(k,) for k in ("cpus", "tasks", "latency", "switches", "migrations", "kvm")}


@pytest.mark.parametrize("command", ["info", "stats", "diagnose"])
def test_schema_rejects_renamed_and_mistyped_keys(capsys, tmp_path, command):
    """A key renamed, dropped or given another type anywhere in a real document is an error."""
    sim = simkvm.simulate(seed=2, variant="kernel5_tgid")
    p = tmp_path / "kvm.txt"
    sim.write(p)
    doc = _json(capsys, command, p, *(["--steal-pct", "1", "--min-wait-ms", "0"] if command == "diagnose"
                                      else []))
    assert _rejected_mutations(command, doc) > {"info": 20, "stats": 150, "diagnose": 40}[command]


@pytest.mark.parametrize("command", ["info", "stats", "diagnose"])
def test_schema_rejects_renamed_and_mistyped_keys_of_several_machines(capsys, tmp_path, command):
    """The same over the documents of a host and its guest: each machine's stats, the guest
    split, the guest findings (simguest: two vCPUs, guest tasks losing time to steal and exits)."""
    p = tmp_path / "merged.txt"
    p.write_text(simguest.simulate(seed=1).merged_text())
    doc = _json(capsys, command, p)
    assert len(doc["source"]["machines"] if command != "info" else doc["machines"]) == 2
    if command == "stats":
        assert doc["guest"]["trace-guest.dat"]["latency"] and doc["guest"]["trace-guest.dat"]["exits"]
    if command == "diagnose":
        assert {f["kind"] for f in doc["findings"]} >= {"guest_host_loss", "vcpu_steal"}
    tried = _rejected_mutations(command, doc)
    if command == "diagnose":
        # _trim keeps the first finding (a guest one): the host's ones, whose subjects name the host, too
        host = [f for f in doc["findings"] if f["kind"] != "guest_host_loss"]
        assert host[0]["subject"]["machine"] == "trace.dat"
        tried += _rejected_mutations(command, dict(doc, findings=host))
    assert tried > {"info": 25, "stats": 250, "diagnose": 70}[command]


def _may_drop(command, path):
    """A key a document may leave out: a stats section not asked for, source.machine (only
    with --machine), and the optional parts of a several-machine document."""
    if command == "stats" and path[:1] == ("machines",) and len(path) > 2:
        return path[2:] in _OPTIONAL           # a machine's document: its source.machine is required
    return path in _OPTIONAL or path == ("source", "machine") or path in {
        "info": {("machines",)}, "stats": {("guest",), ("errors",)}, "diagnose": set()}[command]


def _rejected_mutations(command, doc):
    """Each key of the document (cut by _trim) renamed, dropped or mistyped in turn must make
    it invalid; returns how many mutations were tried."""
    v = json_validator(command)
    doc = _trim(doc)
    assert v.is_valid(doc)
    tried = 0
    for path, value in list(_paths(doc)):
        parent = _at(doc, path)
        if isinstance(parent, dict) and path[-2:-1] and path[-2] in _OPEN and not isinstance(path[-1], int):
            continue
        # one mutation per key, in turn (each validation of a whole document takes a while)
        how = ("renamed", "dropped", "mistyped")[tried % 3]
        if how == "dropped" and _may_drop(command, path):
            how = "renamed"
        bad = copy.deepcopy(doc)
        holder = _at(bad, path)
        if how == "renamed":
            holder[path[-1] + "_x"] = holder.pop(path[-1])
        elif how == "dropped":
            holder.pop(path[-1])
        elif isinstance(value, bool) or value is None:
            holder[path[-1]] = 7 if isinstance(value, bool) else True  # a bool is no nullable type
        elif isinstance(value, int):
            # 3 -> 3.0 is mistyped too, except for thresholds (numbers that default to integers)
            holder[path[-1]] = "1" if path[0] == "thresholds" else float(value) + (0.5 if tried % 2 else 0)
        else:
            holder[path[-1]] = "x" if isinstance(value, float) else 1.5
        assert not v.is_valid(bad), (how, path, value)
        tried += 1
    return tried


# -- docs/json-schema.md against the schema -----------------------------------------------------

def _schemas():
    return {p.name: json.loads(p.read_text()) for p in SCHEMA_DIR.glob("*.schema.json")}


def _resolve(schemas, file, node):
    """Follow $ref (and the object branch of a nullable oneOf) to the node that describes."""
    while True:
        if "$ref" in node:
            ref = node["$ref"]
            target, _, pointer = ref.partition("#")
            file = target or file
            node = schemas[file]
            for part in pointer.strip("/").split("/"):
                if part:
                    node = node[part]
            continue
        if "oneOf" in node:
            branches = [b for b in node["oneOf"] if b.get("type") != "null"]
            if len(branches) == 1:
                node = branches[0]
                continue
        return file, node


def _node(schemas, where, path):
    """The node at ``path`` (property names, "[]" for items) below ``where``: a schema file,
    or a file#pointer."""
    file = where.partition("#")[0]
    file, node = _resolve(schemas, file, {"$ref": where} if "#" in where else schemas[file])
    for step in path:
        file, node = _resolve(schemas, file, node["items"] if step == "[]" else node["properties"][step])
    return file, node


def _property_names(schemas, file, node, seen=None):
    """Every property name reachable below a node (maps' value schemas included)."""
    seen = set() if seen is None else seen
    file, node = _resolve(schemas, file, node)
    if id(node) in seen:
        return set()
    seen.add(id(node))
    names = set(node.get("properties", {}))
    subs = list(node.get("properties", {}).values())
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            subs.append(node[key])
    for rule in node.get("allOf", []):
        subs.extend(rule.get("then", {}).get("properties", {}).values())
    for s in subs:
        names |= _property_names(schemas, file, s, seen)
    return names


def _tables(text):
    """[(heading, n-th table under it, [rows as lists of cells])] of the Markdown."""
    out, heading, n, rows = [], None, 0, None
    for line in text.splitlines() + [""]:
        if line.startswith("#"):
            heading, n = line.lstrip("#").strip(), 0
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            if rows is None:
                rows = []
            elif not set(line) <= set("|- "):
                rows.append(cells)
            continue
        if rows is not None:
            out.append((heading, n, rows))
            n += 1
            rows = None
    return out


def _names(cell):
    """The key names a cell lists in backticks: `a`, `b` or `a, b` (not what braces nest)."""
    names = []
    for code in re.findall(r"`([^`]*)`", cell):
        top = re.sub(r"[{\[][^{}\[\]]*[}\]]", "", re.sub(r"[{\[][^{}\[\]]*[}\]]", "", code))
        names += [n.split(":")[0].strip() for n in top.split(",") if n.split(":")[0].strip()]
    return names


def _braced(cell):
    """Names inside {...} in a cell's backticks (nested objects it documents)."""
    out = []
    for code in re.findall(r"`([^`]*)`", cell):
        for inner in re.findall(r"\{([^{}]*)", code):
            out += [n.split(":")[0].strip() for n in inner.split(",")]
    return [n for n in out if re.fullmatch(r"[a-z_][a-z0-9_*]*", n)]


#: the single-machine stats document, one guest's split
_STATS, _GUEST = "stats.schema.json#/$defs/document", "stats.schema.json#/$defs/guest_split"
#: the Markdown tables and the schema node whose keys they list
TABLES = {
    ("`source`", 0): (_STATS, ["source"]),
    ("`cpus`: list, one object per CPU, by CPU number", 0): (_STATS, ["cpus", "[]"]),
    ("`tasks`: list, one object per thread, by `run_ns` descending", 0): (_STATS, ["tasks", "[]"]),
    ("`latency`: object", 0): (_STATS, ["latency"]),
    ("`wakeups`: list, one object per woken comm, by `count` descending", 0): (_STATS, ["wakeups", "[]"]),
    ("`switches`: list, one object per (comm, pid) as printed in sched_switch, by `switches_in` descending", 0):
        (_STATS, ["switches", "[]"]),
    ("`kvm`: object (`--kvm`, and the overview of a trace with vCPU threads)", 0): (_STATS, ["kvm"]),
    ("`kvm`: object (`--kvm`, and the overview of a trace with vCPU threads)", 1):
        (_STATS, ["kvm", "vcpus", "[]"]),
    ("`ftfast diagnose --format json`", 0): ("diagnose.schema.json#/$defs/document", []),
    ("`ftfast info --format json`", 0): ("info.schema.json", []),
    ("`info`: `machines`, one object per machine", 0): ("info.schema.json", ["machines", "[]"]),
    ("`stats` of several machines", 0): ("stats.schema.json#/$defs/machines_document", []),
    ("`stats --guest`: the guest split only", 0): ("stats.schema.json#/$defs/guest_document", []),
    ("`guest`: object, one split per guest machine (definitions G1-G7 in `ftrace_fast/guest.py`)", 0):
        (_GUEST, []),
    ("`guest` `mapping`: list, one object per guest CPU", 0): (_GUEST, ["mapping", "[]"]),
    ("`guest` `tasks`: list, one object per (guest task, guest CPU)", 0):
        (_GUEST, ["tasks", "[]"]),
    ("`guest` `latency`: list, one object per guest task with samples", 0):
        (_GUEST, ["latency", "[]"]),
    ("`diagnose` of several machines", 0): ("diagnose.schema.json#/$defs/machines_document", []),
}
#: the tables of finding kinds: (heading, n) -> the finding definition whose kinds they list, and
#: the kinds a table leaves to another (a several-machine finding is also every kind above)
KIND_TABLES = {
    ("`ftfast diagnose --format json`", 1): ("finding", ()),
    ("`diagnose` of several machines", 1): ("machine_finding", ("finding",)),
}


def _matches(doc_names, schema_names):
    """Each documented name (`latency_*_ns` is a pattern) names a key and each key is named."""
    unknown = [n for n in doc_names if not fnmatch.filter(schema_names, n)]
    undocumented = [k for k in schema_names if not any(fnmatch.fnmatch(k, n) for n in doc_names)]
    return unknown, undocumented


def test_markdown_tables_list_the_schema_keys():
    schemas = _schemas()
    text = DOC.read_text()
    seen = set()
    for heading, n, rows in _tables(text):
        if heading.startswith("Exit codes") or (heading, n) in KIND_TABLES:
            continue
        assert (heading, n) in TABLES, f"docs/json-schema.md: a table under {heading!r} the test does not map"
        seen.add((heading, n))
        file, node = _node(schemas, *TABLES[heading, n])
        keys = set(node["properties"])
        documented = [k for r in rows for k in _names(r[0])]
        unknown, undocumented = _matches(documented, keys)
        assert not unknown and not undocumented, (heading, "not in the schema:", unknown,
                                                  "not in the table:", undocumented)
        for r in rows:
            for k in _names(r[0]):
                below = _property_names(schemas, file, node["properties"][k])
                nested = [x for x in _braced(r[-1]) if not fnmatch.filter(below, x)]
                assert not nested, (heading, k, "documents keys the schema does not have:", nested)
    assert seen == set(TABLES)


def test_markdown_kinds_and_evidence_follow_the_schema():
    schemas = _schemas()
    text = DOC.read_text()
    tables = {(h, n): rows for h, n, rows in _tables(text)}
    kinds = {}
    for (heading, n), (name, inherited) in KIND_TABLES.items():
        rows = tables[heading, n]
        _, finding = _node(schemas, f"diagnose.schema.json#/$defs/{name}", [])
        kinds[name] = finding["properties"]["kind"]["enum"]
        documented = [_names(r[0])[0] for r in rows] + [k for i in inherited for k in kinds[i]]
        assert documented == finding["properties"]["kind"]["enum"], (heading, documented)
        for r in rows:
            kind = _names(r[0])[0]
            (rule,) = [a for a in finding["allOf"] if a["if"]["properties"]["kind"]["const"] == kind]
            _, ev = _resolve(schemas, "diagnose.schema.json", rule["then"]["properties"]["evidence"])
            keys = set(ev.get("properties", {}))
            documented = [] if r[2] == "(none)" else _names(r[2])
            unknown, undocumented = _matches(documented, keys)
            assert not unknown and not undocumented, (kind, unknown, undocumented)
            nested = [x for x in _braced(r[2]) if not fnmatch.filter(
                _property_names(schemas, "diagnose.schema.json", ev), x)]
            assert not nested, (kind, nested)
        # every rule of a several-machine finding but the guest's is a rule of a finding, with
        # the same evidence and the subject's machine subject
        for rule in finding["allOf"]:
            kind = rule["if"]["properties"]["kind"]["const"]
            for i in inherited:
                (same,) = [a for a in schemas["diagnose.schema.json"]["$defs"][i]["allOf"]
                           if a["if"]["properties"]["kind"]["const"] == kind] or [None]
                if same is None:
                    assert kind in [_names(r[0])[0] for r in rows]
                    continue
                got, want = rule["then"]["properties"], same["then"]["properties"]
                assert got["evidence"] == want["evidence"], kind
                defs = schemas["diagnose.schema.json"]["$defs"]
                subject, single = (defs[x["subject"]["$ref"].rpartition("/")[2]] for x in (got, want))
                # the same keys, closed, and machine required; a caveat's empty subject: machine only
                assert subject["required"] == ["machine"] and set(subject["properties"]) == {"machine"}
                assert subject.get("$ref") == single.get("$ref") and (
                    subject.get("unevaluatedProperties") is False if "$ref" in single
                    else single["maxProperties"] == 0 and subject["additionalProperties"] is False), kind
    _, finding = _node(schemas, "diagnose.schema.json#/$defs/document", ["findings", "[]"])
    finding_line = re.search(r"A finding is `\{([^}]*)\}`", text).group(1)
    assert [k.strip() for k in finding_line.split(",")] == list(finding["properties"])
    guest_line = re.search(r"A guest finding has subject\s+`\{([^}]*)\}`", text).group(1)
    assert [k.strip() for k in guest_line.split(",")] == \
        list(schemas["diagnose.schema.json"]["$defs"]["guest_subject"]["properties"])


def test_markdown_names_every_schema_key():
    """The stats top level as the Markdown shows it, the filters, and every key of every schema
    named somewhere in the prose."""
    schemas = _schemas()
    text = DOC.read_text()
    block = re.search(r"## `ftfast stats --format json`\s+```json\n(.*?)```", text, re.S).group(1)
    shown = set(re.findall(r'"(\w+)":', block)) | {"kvm"}     # kvm has its own section
    assert shown == set(schemas["stats.schema.json"]["$defs"]["document"]["properties"])
    filters = text.split("### `filters`")[1].split("###")[0]
    fkeys = set(schemas["common.schema.json"]["$defs"]["filters"]["properties"])
    assert fkeys <= set(re.findall(r"`(\w+)`", filters))
    named = set()
    for code in re.findall(r"`([^`]*)`", text):
        named |= set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", code))
    named |= set(re.findall(r"`(\w+)", text))
    every = set()
    for name, s in schemas.items():
        every |= _property_names(schemas, name, s)
        for d in s.get("$defs", {}).values():
            every |= _property_names(schemas, name, d)
    missing = sorted(k for k in every if k not in named and not fnmatch.filter(
        re.findall(r"`([\w*]+)`", text), k))
    assert not missing, f"keys of docs/schema that docs/json-schema.md never names: {missing}"
