"""Erlang terms on the Python side of a worker process: the codec and its types.

``Atom`` and ``Term`` behave as the NIF's ``_erlang.Atom`` and ``_erlang.Term`` do
(docs/types.md): an atom is a ``str`` that converts back to an atom; a pid, reference,
port or fun is an opaque, hashable ``Term`` ordered as Erlang orders terms, that converts
back to the very same term.  A Term keeps the term's external format (``raw``).
"""

from __future__ import annotations

import struct
from typing import Any

from . import _codec

GENERIC = _codec.GENERIC
RAW = _codec.RAW
SCOPE = _codec.SCOPE
ENVIRON = _codec.ENVIRON
KWARGS = _codec.KWARGS


class Atom(str):
    """An Erlang atom: a str that converts back to an atom."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Atom({str.__repr__(self)})"


Atom.__module__ = "_erlang"


class BadArg(Exception):
    """A term the py:call table refuses: ``kind`` ('invalid_utf8', 'improper_list',
    'too_deep'...) and the offending ``term`` (a Term, or None for too_deep)."""

    def __init__(self, kind: str, term: Term | None) -> None:
        super().__init__(kind, term)
        self.kind = kind
        self.term = term


class Unconvertible(Exception):
    """A value with no Erlang form: ``what`` is its type's name, 'Atom', 'dict with keys
    equal in Erlang', or 'too_deep'."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


# Term order of the opaque types (number < atom < reference < fun < port < pid).
_RANK = {90: 0, 114: 0, 101: 0, 112: 1, 113: 1, 89: 2, 102: 2, 120: 2, 88: 3, 103: 3}

# The node this worker belongs to (set from the Erlang side's first frame): its pids,
# ports and references print with node number 0, as Erlang prints them.
LOCAL_NODE = b""


def _atom_at(raw: bytes, i: int) -> tuple[bytes, int]:
    tag = raw[i]
    if tag in (100, 118):
        n = struct.unpack_from(">H", raw, i + 1)[0]
        return raw[i + 3 : i + 3 + n], i + 3 + n
    n = raw[i + 1]
    return raw[i + 2 : i + 2 + n], i + 2 + n


class Term:
    """An opaque Erlang term (pid, reference, port or fun)."""

    __slots__ = ("raw", "_key")

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self._key: tuple[Any, ...] | None = None

    def _order(self) -> tuple[Any, ...]:
        if self._key is None:
            self._key = _order_key(self.raw)
        return self._key

    def __eq__(self, other: object) -> bool:
        return type(other) is Term and other.raw == self.raw

    def __hash__(self) -> int:
        return hash(self.raw)

    def __lt__(self, other: object) -> bool:
        if type(other) is not Term:
            return NotImplemented
        return self._order() < other._order()

    def __le__(self, other: object) -> bool:
        if type(other) is not Term:
            return NotImplemented
        return self._order() <= other._order()

    def __gt__(self, other: object) -> bool:
        if type(other) is not Term:
            return NotImplemented
        return self._order() > other._order()

    def __ge__(self, other: object) -> bool:
        if type(other) is not Term:
            return NotImplemented
        return self._order() >= other._order()

    def __repr__(self) -> str:
        return f"<erlang term {_text(self.raw)}>"


Term.__module__ = "_erlang"


def _order_key(raw: bytes) -> tuple[Any, ...]:
    """Erlang's order for opaque terms of the same node: pids by (serial, number),
    references by their words from the most significant, ports by number, local funs
    before external ones."""
    tag = raw[0]
    rank = _RANK.get(tag, 4)
    if tag in (88, 103):
        node, i = _atom_at(raw, 1)
        number, serial = struct.unpack_from(">II", raw, i)
        return (rank, node, serial, number)
    if tag in (89, 102, 120):
        node, i = _atom_at(raw, 1)
        number = struct.unpack_from(">Q" if tag == 120 else ">I", raw, i)[0]
        return (rank, node, number)
    if tag == 90:
        words = struct.unpack_from(">H", raw, 1)[0]
        node, i = _atom_at(raw, 3)
        ids = struct.unpack_from(f">{words}I", raw, i + 4)
        return (rank, node, words, tuple(reversed(ids)))
    if tag == 112:
        module, i = _atom_at(raw, 1 + 4 + 1 + 16 + 4 + 4)
        index = struct.unpack_from(">I", raw, 1 + 4 + 1 + 16)[0]
        return (rank, 0, module, index, raw)
    return (rank, 1, raw)


def _text(raw: bytes) -> str:
    """The term as Erlang prints it (node number 0 for this node's terms)."""
    tag = raw[0]
    try:
        if tag in (88, 103):
            node, i = _atom_at(raw, 1)
            number, serial = struct.unpack_from(">II", raw, i)
            return f"<{_node_number(node)}.{number}.{serial}>"
        if tag in (89, 102, 120):
            node, i = _atom_at(raw, 1)
            number = struct.unpack_from(">Q" if tag == 120 else ">I", raw, i)[0]
            return f"#Port<{_node_number(node)}.{number}>"
        if tag == 90:
            words = struct.unpack_from(">H", raw, 1)[0]
            node, i = _atom_at(raw, 3)
            ids = struct.unpack_from(f">{words}I", raw, i + 4)
            return f"#Ref<{_node_number(node)}." + ".".join(str(w) for w in reversed(ids)) + ">"
        if tag == 112:
            module, i = _atom_at(raw, 1 + 4 + 1 + 16 + 4 + 4)
            old_index, i = _small_int_at(raw, i)
            old_uniq, _ = _small_int_at(raw, i)
            return f"#Fun<{module.decode('utf-8', 'replace')}.{old_index}.{old_uniq}>"
        if tag == 113:
            module, i = _atom_at(raw, 1)
            function, i = _atom_at(raw, i)
            arity, _ = _small_int_at(raw, i)
            return f"fun {module.decode('utf-8', 'replace')}:{function.decode('utf-8', 'replace')}/{arity}"
    except (struct.error, IndexError):
        pass
    return "?"


def _small_int_at(raw: bytes, i: int) -> tuple[int, int]:
    if raw[i] == 97:
        return raw[i + 1], i + 2
    return struct.unpack_from(">i", raw, i + 1)[0], i + 5


def _node_number(node: bytes) -> str:
    return "0" if node == LOCAL_NODE else node.decode("utf-8", "replace")


_codec.init(Atom, Term, BadArg, Unconvertible)

decode = _codec.decode
encode = _codec.encode
