"""Names from outside, made safe to show: in audit tables, reason files, alerts, reports and logs.

A file name is chosen by whoever dropped the file. It may hold control characters (a terminal
escape, a line break that forges a log line or an e-mail header), bidirectional overrides, bytes
that are not UTF-8 (Python keeps them as lone surrogates, which PostgreSQL refuses) or run to
hundreds of characters. :func:`safe_name` is the one way such a name is displayed or stored for
display: every character that is not printable is written as a visible escape (``\\x1b``,
``\\u202e``, a byte that is not UTF-8 as ``\\xff``), and a long name is cut, with a short digest of
the whole name so that two different long names stay different. A name that is already plain is
returned unchanged.
"""

from __future__ import annotations

import hashlib

NAME_LIMIT_BYTES = 150  # UTF-8 bytes of a shown name (a file system allows 255 per name)
TEXT_LIMIT_CHARS = 300  # characters of a shown line of text (an alert subject, say)


def _escape(ch: str) -> str:
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    if ch == " " or ch.isprintable():
        return ch
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _escaped(text: str) -> str:
    return "".join(_escape(ch) for ch in text)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:8]


def safe_name(name: str | bytes, limit_bytes: int = NAME_LIMIT_BYTES) -> str:
    """`name` as it may be shown or stored: printable, valid UTF-8, at most `limit_bytes` bytes."""
    if isinstance(name, bytes):
        name = name.decode("utf-8", "surrogateescape")
    shown = _escaped(name)
    if len(shown.encode("utf-8")) <= limit_bytes:
        return shown
    tail = f"…{_digest(name)}"
    budget = limit_bytes - len(tail.encode("utf-8"))
    cut = shown.encode("utf-8")[:budget].decode("utf-8", "ignore")
    return cut + tail


def is_plain(name: str) -> bool:
    """True when `name` is shown as it is (nothing escaped, nothing cut)."""
    return safe_name(name) == name


def safe_text(text: str, limit_chars: int = TEXT_LIMIT_CHARS) -> str:
    """A line of text built from outside names, safe for a log line or an e-mail subject."""
    shown = _escaped(text)
    return shown if len(shown) <= limit_chars else shown[: limit_chars - 1] + "…"
