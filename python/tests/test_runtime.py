"""erlang_python_runtime: the set-up the NIF runs in each interpreter."""

import asyncio
import os
import sys
from pathlib import Path

import pytest

import erlang_python_runtime as rt

VERSION = "%d.%d" % sys.version_info[:2]


@pytest.fixture
def sys_path(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    path = ["/std/lib", "/std/dynload"]
    monkeypatch.setattr(sys, "path", path)
    return path


def test_paths_first_in_order_each_once(sys_path: list[str]) -> None:
    assert rt.configure(["/a", "/b", "/std/lib"], None, VERSION) == ""
    assert sys.path == ["/a", "/b", "/std/lib", "/std/dynload"]
    assert rt.configure(["/b", "/a"], None, VERSION) == ""
    assert sys.path == ["/b", "/a", "/std/lib", "/std/dynload"]


def test_venv_site_packages_after_paths_with_pth(sys_path: list[str], tmp_path: Path) -> None:
    site_packages = tmp_path / "lib" / f"python{VERSION}" / "site-packages"
    (site_packages / "extra").mkdir(parents=True)
    (site_packages / "extra.pth").write_text(str(site_packages / "extra") + "\n")
    assert rt.configure(["/a"], str(tmp_path), VERSION) == ""
    assert sys.path == ["/a", str(site_packages), str(site_packages / "extra"), "/std/lib", "/std/dynload"]
    assert rt.configure(["/a"], str(tmp_path), VERSION) == ""
    assert sys.path.count(str(site_packages)) == 1


def test_venv_of_another_python_is_a_warning(sys_path: list[str], tmp_path: Path) -> None:
    warning = rt.configure(["/a"], str(tmp_path), VERSION)
    assert warning == (
        f"virtualenv {tmp_path} has no {tmp_path}/lib/python{VERSION}/site-packages: "
        f"is it a Python {VERSION} venv?"
    )
    assert sys.path == ["/a", "/std/lib", "/std/dynload"]


def test_blocked_exit_replaces_os_exit(sys_path: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "_exit", os._exit)
    guards: list[bool] = []
    monkeypatch.setattr(rt, "guard_process", lambda: guards.append(True))

    def blocked(*args: object) -> None:
        raise SystemExit("blocked")

    rt.configure([], None, VERSION, blocked)
    with pytest.raises(SystemExit, match="blocked"):
        os._exit(0)
    assert guards == [True]


def test_package_imports_write_no_bytecode(
    sys_path: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "package"
    package.mkdir()
    (package / "ep_no_cache_probe.py").write_text("VALUE = 42\n")
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    monkeypatch.setattr(sys, "path_importer_cache", {})
    monkeypatch.delitem(sys.modules, "ep_no_cache_probe", raising=False)
    rt.configure([str(package)], None, VERSION)
    import ep_no_cache_probe  # type: ignore[import-not-found]

    assert ep_no_cache_probe.VALUE == 42
    assert sorted(p.name for p in package.iterdir()) == ["ep_no_cache_probe.py"]
    del sys.modules["ep_no_cache_probe"]


def test_teardown_cancels_tasks_and_closes_the_loop() -> None:
    loop = asyncio.new_event_loop()
    unwound: list[str] = []

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            unwound.append("finally")

    task = loop.create_task(forever())
    loop.run_until_complete(asyncio.sleep(0))
    rt.teardown_loop(loop)
    assert task.cancelled()
    assert unwound == ["finally"]
    assert loop.is_closed()


def test_teardown_of_an_idle_loop() -> None:
    loop = asyncio.new_event_loop()
    rt.teardown_loop(loop)
    assert loop.is_closed()


@pytest.fixture
def guarded(monkeypatch: pytest.MonkeyPatch) -> None:
    """guard_process() applied, everything it replaces restored afterwards."""
    import multiprocessing
    import signal

    for name in ("fork", "forkpty", "kill", "killpg"):
        monkeypatch.setattr(os, name, getattr(os, name))
    for name in ("raise_signal", "pthread_kill"):
        monkeypatch.setattr(signal, name, getattr(signal, name))
    method = multiprocessing.get_start_method(allow_none=True)
    rt.guard_process()
    rt.guard_process()  # idempotent
    yield
    multiprocessing.set_start_method(method, force=True)


def test_fork_is_refused(guarded: None) -> None:
    with pytest.raises(RuntimeError, match="os.fork"):
        os.fork()
    with pytest.raises(RuntimeError, match="os.fork"):
        os.forkpty()


def test_signals_to_own_process_are_refused(guarded: None) -> None:
    import signal

    for pid in (os.getpid(), 0, -1, -os.getpgrp()):
        with pytest.raises(PermissionError, match="VM's own process"):
            os.kill(pid, signal.SIGTERM)
    with pytest.raises(PermissionError):
        os.killpg(os.getpgrp(), signal.SIGTERM)
    with pytest.raises(PermissionError):
        signal.raise_signal(signal.SIGTERM)
    with pytest.raises(PermissionError):
        signal.pthread_kill(threading_ident(), signal.SIGTERM)
    os.kill(os.getpid(), 0)  # signal 0 only checks: allowed
    signal.pthread_kill(threading_ident(), 0)
    with pytest.raises(ProcessLookupError):
        os.kill(2**22 + 12345, signal.SIGTERM)  # another pid goes to the real kill


def test_multiprocessing_spawns_from_the_interpreter(guarded: None) -> None:
    import multiprocessing

    assert multiprocessing.get_start_method() == "spawn"
    with multiprocessing.Pool(1) as pool:
        assert pool.map(abs, [-1, -2]) == [1, 2]


def threading_ident() -> int:
    import threading

    return threading.get_ident()
