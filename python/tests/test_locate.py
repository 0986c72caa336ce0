import os
import subprocess
import sys
import sysconfig

import pytest

import hornbeam_locate

SCRIPT = hornbeam_locate.__file__


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-S", SCRIPT, *args], capture_output=True,
                          text=True, check=False)


def pairs(out: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in out.splitlines())


def test_runtime_facts_describe_this_interpreter() -> None:
    done = run()
    assert done.returncode == 0, done.stdout + done.stderr
    facts = pairs(done.stdout)
    assert set(facts) == {"version", "home", "executable", "libpython"}
    assert facts["version"] == "%d.%d.%d" % sys.version_info[:3]
    assert facts["home"] == sys.base_prefix
    assert facts["executable"] == os.path.realpath(sys.executable)
    assert os.path.isfile(facts["libpython"])
    assert os.path.basename(facts["libpython"]).startswith("libpython")


def test_build_facts_add_headers_and_the_package_contents() -> None:
    facts = pairs(run("--build").stdout)
    assert os.path.isfile(os.path.join(facts["include"], "Python.h"))
    modules = facts["modules"].split(",")
    assert "hornbeam_locate" in modules
    here = os.path.dirname(SCRIPT)
    assert all(os.path.isfile(os.path.join(here, m + ".py")) for m in modules)
    packages = facts["packages"].split(",")
    assert "hornbeam_port" in packages
    assert all(os.path.isfile(os.path.join(here, p, "__init__.py")) for p in packages)
    assert facts["ext_suffix"] == sysconfig.get_config_var("EXT_SUFFIX")


def test_no_shared_libpython_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real = sysconfig.get_config_var
    monkeypatch.setattr(sysconfig, "get_config_var",
                        lambda name: 0 if name == "Py_ENABLE_SHARED" else real(name))
    facts, errors = hornbeam_locate.facts(build=False)
    assert "libpython" not in facts
    assert len(errors) == 1 and "has no shared libpython" in errors[0]


def test_missing_headers_are_an_error(monkeypatch: pytest.MonkeyPatch,
                                      tmp_path: os.PathLike[str]) -> None:
    paths = dict(sysconfig.get_paths(), include=str(tmp_path))
    monkeypatch.setattr(sysconfig, "get_paths", lambda: paths)
    facts, errors = hornbeam_locate.facts(build=True)
    assert errors == [f"no Python.h in {tmp_path}: install the headers of {sys.executable} "
                      f"(e.g. Debian's python{sys.version_info[0]}.{sys.version_info[1]}-dev)"]
    assert "modules" not in facts


def test_errors_print_and_exit_1(monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(hornbeam_locate, "libpython", lambda: None)
    assert hornbeam_locate.main([]) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith("error=")


def test_home_names_both_prefixes_when_they_differ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "base_prefix", "/a")
    monkeypatch.setattr(sys, "base_exec_prefix", "/b")
    assert hornbeam_locate.home() == "/a:/b"
