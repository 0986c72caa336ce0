"""Where this interpreter's pieces are, for embedding it in the BEAM.

Run as a script, with the standard library only (``python -S hornbeam_locate.py``):

* by the NIF's build (``c_src/Makefile``, with ``--build``, which also checks the C
  headers), to compile against this interpreter;
* by the Erlang side at run time (``py_python``), to find the libpython, home and
  executable of the interpreter chosen by its rule.

It prints ``key=value`` lines (``version``, ``libpython``, ``home``, ``executable``, and
with ``--build`` also ``include``, ``ext_suffix`` (a C extension's file suffix),
``modules`` and ``packages``), or one ``error=...`` line per reason this interpreter
cannot be embedded, and then exits with status 1.
"""

from __future__ import annotations

import os
import sys
import sysconfig

MIN_VERSION = (3, 11)


def libpython() -> str | None:
    """The shared libpython file of this interpreter, or None when it has none."""
    if not sysconfig.get_config_var("Py_ENABLE_SHARED"):
        return None
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    for name in (sysconfig.get_config_var("INSTSONAME"), sysconfig.get_config_var("LDLIBRARY")):
        if name and os.path.isfile(os.path.join(libdir, name)):
            return os.path.join(libdir, name)
    return None


def package_contents() -> tuple[list[str], list[str]]:
    """The python/ package's (modules, packages), as pyproject.toml (beside this file) lists
    them for pip; the NIF's build copies the same ones into priv/python."""
    import tomllib

    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "pyproject.toml"),
              "rb") as f:
        setuptools = tomllib.load(f)["tool"]["setuptools"]
    return list(setuptools["py-modules"]), list(setuptools.get("packages", []))


def home() -> str:
    """PYTHONHOME's form of this interpreter's installation (its base, not a venv)."""
    if sys.base_exec_prefix == sys.base_prefix:
        return sys.base_prefix
    return f"{sys.base_prefix}:{sys.base_exec_prefix}"


def facts(build: bool) -> tuple[dict[str, str], list[str]]:
    """(facts, errors) about this interpreter; build adds what compiling needs."""
    version = "%d.%d.%d" % sys.version_info[:3]
    found: dict[str, str] = {
        "version": version,
        "home": home(),
        "executable": os.path.realpath(sys.executable),
    }
    errors: list[str] = []
    if sys.implementation.name != "cpython" or sys.version_info[:2] < MIN_VERSION:
        errors.append(f"{sys.executable} is {sys.implementation.name} {version}; "
                      f"erlang_python needs CPython {MIN_VERSION[0]}.{MIN_VERSION[1]} or later")
    lib = libpython()
    if lib is None:
        errors.append(f"{sys.executable} ({version}) has no shared libpython "
                      "(it was built without --enable-shared, or its libpython package, "
                      f"e.g. Debian's libpython{sys.version_info[0]}.{sys.version_info[1]}, "
                      "is not installed)")
    else:
        found["libpython"] = lib
    if build:
        include = sysconfig.get_paths()["include"]
        if not os.path.isfile(os.path.join(include, "Python.h")):
            errors.append(f"no Python.h in {include}: install the headers of {sys.executable} "
                          f"(e.g. Debian's python{sys.version_info[0]}.{sys.version_info[1]}-dev)")
        elif any(c.isspace() for c in include):
            errors.append(f"the headers' directory {include!r} contains white space, which "
                          "make cannot pass on")
        found["include"] = include
        found["ext_suffix"] = sysconfig.get_config_var("EXT_SUFFIX")
        if not errors:
            modules, packages = package_contents()
            found["modules"] = ",".join(modules)
            found["packages"] = ",".join(packages)
    return found, errors


def main(argv: list[str]) -> int:
    found, errors = facts("--build" in argv)
    if errors:
        for e in errors:
            print("error=" + e)
        return 1
    for key, value in found.items():
        print(f"{key}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
