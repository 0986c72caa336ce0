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

    def blocked(*args: object) -> None:
        raise SystemExit("blocked")

    rt.configure([], None, VERSION, blocked)
    with pytest.raises(SystemExit, match="blocked"):
        os._exit(0)


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
