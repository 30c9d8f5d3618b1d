"""Small helpers shared by the tests."""

import functools
import io
import json
import math
import os
import warnings
from pathlib import Path

import numpy as np

import ftrace_fast
from ftrace_fast import events as ev

DATA = Path(__file__).resolve().parent / "data"
SCHEMA_DIR = Path(__file__).resolve().parent.parent / "docs" / "schema"
#: the commands whose --format json documents docs/schema describes
SCHEMA_COMMANDS = ("info", "stats", "diagnose")


def corpus_dir():
    """../shared/corpus next to the checkout (or $FTFAST_CORPUS); None when absent."""
    env = os.environ.get("FTFAST_CORPUS")
    if env:
        return Path(env) if Path(env).is_dir() else None
    here = Path(__file__).resolve()
    for up in here.parents:
        cand = up / "shared" / "corpus"
        if cand.is_dir():
            return cand
    return None


def load_text(text, **kw):
    """Load ftrace text given as str or bytes."""
    if isinstance(text, str):
        text = text.encode()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ftrace_fast.load(io.BytesIO(text), **kw)


def rows(trace, name):
    """An event's records as dicts with comm and symbol ids resolved to strings, states as
    letters and text fields decoded."""
    a = trace.events.get(name)
    if a is None:
        return []
    layout = trace.layout(name)
    kinds = ev.field_kinds(layout)
    texts = {f: trace.text(name, f) for f, k in kinds.items() if k == "text"}
    out = []
    for i, r in enumerate(a):
        d = {}
        for col in a.dtype.names:
            v = r[col]
            base = col[:-4] if col.endswith(("_off", "_len")) else col
            if kinds.get(base) == "text":
                continue
            if col == "comm" or kinds.get(col) == "comm":
                v = trace.comms[v] if v >= 0 else None
            elif kinds.get(col) == "sym":
                v = trace.symbols[v] if v >= 0 else None
            elif kinds.get(col) == "state":
                v = ev.state_string(int(v))
            elif col == "flags":
                v = bytes(v).decode()
            else:
                v = v.item()
            d[col] = v
        for f, vals in texts.items():
            d[f] = vals[i]
        out.append(d)
    return out


def arrays_equal(t1, t2):
    """Two traces hold identical arrays, tables and accounting."""
    assert sorted(t1.events) == sorted(t2.events)
    for k in t1.events:
        assert t1.events[k].dtype == t2.events[k].dtype
        assert np.array_equal(t1.events[k], t2.events[k]), k
    assert t1.comms == t2.comms
    assert t1.symbols == t2.symbols
    assert np.array_equal(t1.text_arena, t2.text_arena)
    assert np.array_equal(t1.lost, t2.lost)
    assert (t1.stats.lines, t1.stats.events, t1.stats.headers, t1.stats.filtered,
            t1.stats.malformed) == (t2.stats.lines, t2.stats.events, t2.stats.headers,
                                    t2.stats.filtered, t2.stats.malformed)
    assert [(e.line, e.code) for e in t1.errors] == [(e.line, e.code) for e in t2.errors]


def same(a, b):
    """Equal values of equal types, all the way down (NaN equals NaN)."""
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        if a.dtype.names:
            for f in a.dtype.names:
                same(a[f], b[f])
        elif a.dtype.kind == "f":
            assert np.array_equal(a, b, equal_nan=True)
        else:
            assert a.tolist() == b.tolist()
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            same(x, y)
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b)
    else:
        assert a == b


@functools.lru_cache(maxsize=None)
def json_validator(command, part=None):
    """A draft 2020-12 validator of ``ftfast COMMAND --format json`` documents
    (docs/schema/COMMAND.schema.json, its references resolved in docs/schema), whose
    "integer" is a JSON integer only: 3.0 where the contract says an integer is a mistyped key.
    With ``part``, a validator of that definition of the schema (e.g. stats' "kvm" section,
    diagnose's "finding")."""
    import jsonschema
    from referencing import Registry, Resource

    schemas = {p.name: json.loads(p.read_text()) for p in SCHEMA_DIR.glob("*.schema.json")}
    registry = Registry().with_resources(
        (s["$id"], Resource.from_contents(s)) for s in schemas.values())
    cls = jsonschema.validators.extend(
        jsonschema.Draft202012Validator,
        type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
            "integer", lambda _, v: isinstance(v, int) and not isinstance(v, bool)))
    schema = schemas[f"{command}.schema.json"]
    cls.check_schema(schema)
    if part:
        schema = {"$ref": f"{schema['$id']}#/$defs/{part}"}
    return cls(schema, registry=registry, format_checker=cls.FORMAT_CHECKER)


def check_json(command, doc, part=None):
    """Assert a parsed ``ftfast COMMAND --format json`` document (or the ``part`` of one, after
    a JSON round trip) follows docs/schema; returns it.  Every error is listed, each with the
    path of the offending key."""
    errors = sorted(json_validator(command, part).iter_errors(doc), key=lambda e: list(e.absolute_path))
    where = f"$defs/{part} of " if part else ""
    assert not errors, f"ftfast {command} --format json breaks {where}docs/schema/{command}.schema.json:\n" + \
        "\n".join(f"  {'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message[:300]}"
                  for e in errors[:20])
    return doc


def loads_checked(command, text):
    """json.loads of ``ftfast COMMAND --format json`` output, checked against docs/schema."""
    return check_json(command, json.loads(text))


def record_walks(monkeypatch):
    """The tables (IV | CO | SW bits) of every scheduling walk made from now on, in a list."""
    from ftrace_fast import sched
    walks = []
    orig = sched.SchedModel._walk
    monkeypatch.setattr(sched.SchedModel, "_walk",
                        lambda self, full, *sel: walks.append(full) or orig(self, full, *sel))
    return walks
