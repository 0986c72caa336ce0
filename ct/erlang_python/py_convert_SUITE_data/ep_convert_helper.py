"""Python side of py_convert_SUITE."""
import collections
import decimal

import _erlang

Point = collections.namedtuple("Point", "x y")


class MyStr(str):
    pass


class MyDict(dict):
    pass


def identity(x):
    return x


def describe(x):
    """(qualified type name, repr) of what an Erlang term became."""
    t = type(x)
    name = t.__qualname__ if t.__module__ == "builtins" else t.__module__ + "." + t.__qualname__
    return (name, repr(x))


def as_str(x):
    """The plain str of a str (or Atom)."""
    return str.__str__(x)


def equals(a, b):
    return a == b


def hash_equal(a, b):
    return hash(a) == hash(b)


def type_of(x):
    return type(x).__qualname__


def ev(src):
    """Evaluates a Python expression (the Python -> Erlang tables)."""
    return eval(src, {"_erlang": _erlang, "collections": collections, "decimal": decimal,
                      "Point": Point, "MyStr": MyStr, "MyDict": MyDict})


def nest(n):
    """A list nested n levels deep: nest(0) == []."""
    x = []
    for _ in range(n):
        x = [x]
    return x


def depth(x):
    d = 0
    while x:
        x = x[0]
        d += 1
    return d


def int_text(x):
    return str(x)


def int_from_text(s):
    return int(s)
