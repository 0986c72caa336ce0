"""hornbeam_port's term codec (the processes mode's wire): round trips, the external
format of known terms, and every error shape of docs/types.md."""

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hornbeam_port.terms import (
    ENVIRON,
    GENERIC,
    KWARGS,
    RAW,
    SCOPE,
    Atom,
    BadArg,
    Term,
    Unconvertible,
    decode,
    encode,
)

# Leaves that come back as themselves (nan and inf become atoms; None stays None).
leaves = st.one_of(
    st.integers(min_value=-(1 << 300), max_value=1 << 300),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
    st.binary(),
    st.booleans(),
    st.none(),
    # Not the atoms that become Python constants (docs/types.md: not round trips).
    st.text(max_size=20).filter(lambda t: t not in ("true", "false", "none", "undefined", "nil")).map(Atom),
)
hashable = st.recursive(leaves, lambda inner: st.tuples(inner, inner), max_leaves=6)
values = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.lists(inner, max_size=5).map(tuple),
        st.dictionaries(hashable, inner, max_size=5),
    ),
    max_leaves=30,
)


def roundtrip(value):
    data = encode(value)
    decoded, end = decode(data)
    assert end == len(data)
    return decoded


@given(values)
def test_generic_round_trip(value):
    decoded = roundtrip(value)
    assert decoded == value
    assert type(decoded) is type(value)


def test_known_encodings():
    # What erlang:term_to_binary/1 gives for the same terms (OTP 25).
    assert decode(b"\x83a\x01") == (1, 3)
    assert decode(b"\x83b\xff\xff\xff\xff") == (-1, 6)
    assert decode(b"\x83d\x00\x03foo")[0] == Atom("foo")
    assert decode(b"\x83k\x00\x03abc")[0] == [97, 98, 99]  # "abc" is a list of ints
    assert decode(b"\x83t\x00\x00\x00\x02d\x00\x01aa\x02d\x00\x01ba\x01")[0] == {"a": 2, "b": 1}
    assert decode(b"\x83h\x02d\x00\x05bytesm\x00\x00\x00\x02ab")[0] == b"ab"
    assert encode(b"ab") == b"\x83h\x02w\x05bytesm\x00\x00\x00\x02ab"
    assert encode(1 << 64) == b"\x83n\x09\x00" + b"\x00" * 8 + b"\x01"


def test_atoms_and_specials():
    assert decode(b"\x83w\x04true")[0] is True
    assert decode(b"\x83w\x09undefined")[0] is None
    assert decode(b"\x83w\x03nil")[0] is None
    assert repr(decode(b"\x83w\x03foo")[0]) == "Atom('foo')"
    assert roundtrip(float("nan")) == Atom("nan")
    assert roundtrip(float("-inf")) == Atom("neg_inf")
    assert roundtrip({5, 6}) in ([5, 6], [6, 5])


def test_opaque_terms_kept_as_they_are():
    pid = b"X\x77\x0dnonode@nohost\x00\x00\x00\x4f\x00\x00\x00\x00\x00\x00\x00\x00"
    term, end = decode(b"\x83" + pid)
    assert type(term) is Term and term.raw == pid and end == 1 + len(pid)
    assert encode([term]) == b"\x83l\x00\x00\x00\x01" + pid + b"j"
    older = Term(pid[:-9] + b"\x00\x00\x00\x01" + pid[-8:])  # serial 1 after serial 0
    assert sorted([older, term]) == [term, older]


@pytest.mark.parametrize(
    "data, kind, raw",
    [
        (b"\x83m\x00\x00\x00\x01\xff", "invalid_utf8", b"m\x00\x00\x00\x01\xff"),
        (b"\x83M\x00\x00\x00\x01\x03\xe0", "bitstring", b"M\x00\x00\x00\x01\x03\xe0"),
        (b"\x83l\x00\x00\x00\x01a\x01a\x02", "improper_list", b"l\x00\x00\x00\x01a\x01a\x02"),
        # The outer list's improperness wins over an error inside it, as in the NIF.
        (b"\x83l\x00\x00\x00\x01m\x00\x00\x00\x01\xffa\x02", "improper_list",
         b"l\x00\x00\x00\x01m\x00\x00\x00\x01\xffa\x02"),
        (b"\x83t\x00\x00\x00\x01jaa", "unhashable_key", b"j"),
        (b"\x83t\x00\x00\x00\x02a\x01a\x01F?\xf0\x00\x00\x00\x00\x00\x00a\x02", "duplicate_key",
         b"F?\xf0\x00\x00\x00\x00\x00\x00"),
    ],
)
def test_badarg_shapes(data, kind, raw):
    with pytest.raises(BadArg) as info:
        decode(data)
    assert info.value.kind == kind
    assert info.value.term.raw == raw


def test_nesting_limit():
    def nested(n):
        return b"\x83" + b"l\x00\x00\x00\x01" * n + b"j" + b"j" * n

    assert decode(nested(2000))[1] == len(nested(2000))
    with pytest.raises(BadArg) as info:
        decode(nested(2001))
    assert (info.value.kind, info.value.term) == ("too_deep", None)
    deep = []
    for _ in range(2000):
        deep = [deep]
    encode(deep)
    with pytest.raises(Unconvertible, match="too_deep"):
        encode([deep])


@pytest.mark.parametrize(
    "value, what",
    [
        (object(), "object"),
        (complex(1, 2), "complex"),
        ([1, (2, object())], "object"),
        ({None: 1, Atom("none"): 2}, "dict with keys equal in Erlang"),
        ({float("nan"): 1, float("nan"): 2}, "dict with keys equal in Erlang"),
        (Atom("x" * 256), "Atom"),
    ],
)
def test_unconvertible(value, what):
    with pytest.raises(Unconvertible) as info:
        encode(value)
    assert info.value.what == what


def test_lone_surrogate_is_python_error():
    with pytest.raises(UnicodeEncodeError):
        encode("a\ud800")


def test_raw_mode():
    assert decode(b"\x83m\x00\x00\x00\x01\xff", 0, RAW)[0] == b"\xff"
    assert type(decode(b"\x83d\x00\x03foo", 0, RAW)[0]) is str
    assert encode((200, [(b"a", b"b")]), RAW) == b"\x83h\x02a\xc8l\x00\x00\x00\x01h\x02m\x00\x00\x00\x01am\x00\x00\x00\x01bj"


def test_scope_environ_kwargs_modes():
    scope = b"\x83t\x00\x00\x00\x02d\x00\x04pathm\x00\x00\x00\x01/d\x00\x05statet\x00\x00\x00\x01m\x00\x00\x00\x01ka\x01"
    assert decode(scope, 0, SCOPE)[0] == {"path": b"/", "state": {"k": 1}}
    environ = b"\x83t\x00\x00\x00\x02m\x00\x00\x00\x01Km\x00\x00\x00\x01\xe9m\x00\x00\x00\x03a.bh\x02a\x01a\x00"
    assert decode(environ, 0, ENVIRON)[0] == {"K": "\xe9", "a.b": (1, 0)}
    kwargs = b"\x83t\x00\x00\x00\x01d\x00\x01xm\x00\x00\x00\x01v"
    assert decode(kwargs, 0, KWARGS)[0] == {"x": "v"}
    with pytest.raises(BadArg) as info:
        decode(b"\x83t\x00\x00\x00\x01a\x01a\x02", 0, KWARGS)
    assert (info.value.kind, info.value.term.raw) == ("kwargs", b"a\x01")
    with pytest.raises(UnicodeDecodeError):
        decode(b"\x83t\x00\x00\x00\x01m\x00\x00\x00\x01\xffa\x02", 0, KWARGS)


def test_malformed_is_value_error():
    for data in (b"", b"\x82a\x01", b"\x83", b"\x83m\x00\x00\x00\x05ab", b"\x83\xff"):
        with pytest.raises(ValueError):
            decode(data)


def test_offsets_chain_terms():
    data = encode(1) + encode([2]) + encode({"a": b"x"})
    first, at = decode(data)
    second, at = decode(data, at)
    third, at = decode(data, at)
    assert (first, second, third, at) == (1, [2], {"a": b"x"}, len(data))
    assert struct.unpack(">d", encode(1.5)[2:])[0] == 1.5 and not math.isnan(roundtrip(0.0))
