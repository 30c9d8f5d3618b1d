"""The tokenizer's C tables agree with events.py, entry by entry (not only by length)."""
from ftrace_fast import _ftparse, events


def test_each_offset_constant_locates_its_own_column():
    table = _ftparse._offset_table()
    # every O_* constant 0..NOFFS-1 appears once, and no (layout, column) is located twice
    assert sorted(table) == list(range(len(table)))
    assert len({(layout, col) for layout, col, _ in table.values()}) == len(table)
    for layout, col, off in table.values():
        cols = {c[0]: c[2] for c in events.layout_columns(layout)}
        assert off == cols[col], (layout, col)


def test_every_typed_field_of_the_parsed_layouts_is_located():
    # the payload decoders store each declared field of these layouts through an O_* offset
    table = _ftparse._offset_table()
    located = {(layout, col) for layout, col, _ in table.values()}
    for layout in ("sched_switch", "sched_wake", "kvm_exit", "kvm_entry", "irq_handler_entry"):
        for field in events.field_kinds(layout):
            assert (layout, field) in located, (layout, field)
