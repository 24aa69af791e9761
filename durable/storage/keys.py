"""Instance-ID prefixes as ranges of the primary key.

A prefix filter written ``substr(id, 1, length(p)) = p`` (or ``starts_with``) is a test each
row must be read to pass, so listing by prefix read every instance. Written as the range
``p <= id < upper(p)`` it is a seek in the primary key, and costs only what it finds.

The range is exact, not an approximation, because both backends order instance IDs by code
point: SQLite compares TEXT with its BINARY collation (``memcmp`` of UTF-8) and PostgreSQL's
``instance_id`` columns are ``COLLATE "C"`` (also bytes; see migration 0001). UTF-8 preserves
code-point order, so byte order, code-point order and Python's ``str`` order agree, and the IDs
that start with ``p`` are exactly those ``>= p`` and ``< upper(p)``, where ``upper(p)`` is the
smallest string greater than every string that starts with ``p``: ``p`` with its last
character raised by one code point. A last character that is already the highest code point
(U+10FFFF) cannot be raised; it is dropped and the one before is raised instead (every string
starting with ``a\\U0010ffff`` is below ``b``). A prefix made only of U+10FFFF has no upper
bound: the strings that start with it are exactly those ``>= p``.

Raising a character never yields a surrogate (U+D800..U+DFFF, which no store can hold): U+D7FF
is followed by U+E000, which is also the next character any stored ID can have there.
"""

from __future__ import annotations

MAX_CODE_POINT = 0x10FFFF
_SURROGATES = range(0xD800, 0xE000)


def prefix_upper_bound(prefix: str) -> str | None:
    """The smallest string above every string that starts with ``prefix`` (in code-point
    order), or None if there is none (``prefix`` is empty or only U+10FFFF characters)."""
    kept = prefix.rstrip(chr(MAX_CODE_POINT))
    if not kept:
        return None
    following = ord(kept[-1]) + 1
    if following in _SURROGATES:
        following = _SURROGATES.stop
    return kept[:-1] + chr(following)
