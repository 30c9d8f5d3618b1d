"""Text shown to a person: trace bytes made safe for a terminal.

A trace is input we do not control: a comm, an event name or a malformed line may carry ESC,
BEL, NUL or a C1 control (U+009B is a CSI on many terminals), which would move the cursor,
retitle the window or ring the bell if echoed raw. Every human-readable output (tables, errors,
warnings) passes its trace-derived text through ``printable``; JSON and CSV keep the exact
text.
"""

from __future__ import annotations

import re

# All C0 controls (TAB and LF too: a one-line message must stay one line), DEL, C1 controls, the
# Unicode line/paragraph separators and bidi overrides that break or reorder what follows, and lone
# surrogates (undecodable bytes of a file name, which no terminal encoding can write).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _escape(match):
    ch = match.group()
    code = ord(ch)
    if 0xdc80 <= code <= 0xdcff:
        return f"\\x{code - 0xdc00:02x}"  # os.fsdecode's surrogateescape of byte 0x80-0xff
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text) -> str:
    """``text`` with every control character escaped as ``\\xNN`` (``\\uNNNN`` above U+00FF).

    Accepts ``str`` or ``bytes`` (bytes are decoded as UTF-8, invalid bytes shown as ``\\xNN`` too).
    A backslash is left as it is: the escapes are for a reader, not a round trip.

    >>> printable("a\\x1b[31mb\\x07")
    'a\\\\x1b[31mb\\\\x07'
    """
    if isinstance(text, (bytes, bytearray, memoryview)):
        text = bytes(text).decode("utf-8", "backslashreplace")
    elif not isinstance(text, str):
        text = str(text)
    if text.isprintable():
        return text
    return _UNSAFE.sub(_escape, text)
