"""Compatibility layers: scripts written for other trace libraries, run on ftrace_fast.

``from ftrace_fast.compat import trappy`` (trappy's FTrace / SysTrace / BareTrace and their
``data_frame``), ``from ftrace_fast.compat import lisa`` (LISA's ``Trace``, ``df_event`` and the
most used analyses).  Both read the trace with :func:`ftrace_fast.load` and need pandas
(``pip install 'ftrace_fast[pandas]'``).
"""


def require_pandas(what):
    """pandas, or an ImportError saying which extra to install."""
    try:
        import pandas
    except ImportError:
        raise ImportError(f"{what} needs pandas: pip install 'ftrace_fast[pandas]'") from None
    return pandas


#: typed fields the kernel prints as words and the parser stores as numbers: (layout, field) ->
#: the word of each value (irq_handler_exit prints ret=handled / ret=unhandled)
WORD_VALUES = {("irq_handler_exit", "ret"): ("unhandled", "handled")}
