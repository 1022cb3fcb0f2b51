"""tools/bootstrap.py waits for a package-manager lock another process holds, and says so, instead of failing."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from harness.polling import wait_for

ROOT = Path(__file__).resolve().parents[2]
HOLD = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.lockf(fd, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.readline()  # hold the lock until told to let go, as a running apt-get would
"""


@pytest.fixture
def bootstrap():
    spec = importlib.util.spec_from_file_location("bootstrap_under_test", ROOT / "tools" / "bootstrap.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def hold_lock(path: Path) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_busy_lock_is_waited_for_with_a_progress_line(bootstrap, tmp_path, capsys):
    lock = tmp_path / "lock-frontend"
    holder = hold_lock(lock)
    assert bootstrap.lock_holder(lock)
    waiter = threading.Thread(target=bootstrap.wait_for_package_lock, args=("browser", (lock,), 120, 0.1))
    waiter.start()
    try:
        wait_for(lambda: "waiting for the package manager lock" in capsys.readouterr().out, 30, "a progress line")
        assert waiter.is_alive(), "it must wait while the lock is held"
    finally:
        holder.communicate("\n", timeout=10)
    waiter.join(30)
    assert not waiter.is_alive() and not bootstrap.lock_holder(lock)


def test_a_lock_never_released_is_a_clear_error(bootstrap, tmp_path):
    lock = tmp_path / "lock"
    holder = hold_lock(lock)
    try:
        with pytest.raises(SystemExit, match="still holds .* what to do: wait for it to finish"):
            bootstrap.wait_for_package_lock("browser", (lock,), timeout=0.5, interval=0.1)
    finally:
        holder.communicate("\n", timeout=10)


def test_apt_get_waits_for_dpkg_itself_and_failures_say_what_to_do(bootstrap):
    assert bootstrap.apt_get("install", "x")[:3] == ["apt-get", "-o", "DPkg::Lock::Timeout=600"]
    with pytest.raises(SystemExit, match="what to do: "):
        bootstrap.run([sys.executable, "-c", "raise SystemExit(3)"], "jars")
    assert set(bootstrap.HINTS) == set(bootstrap.STEPS)


def test_an_unexpected_failure_in_a_step_also_says_what_to_do(bootstrap, monkeypatch):
    def broken(manifest):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(bootstrap, "step_jars", broken)
    with pytest.raises(SystemExit, match=r"jars: OSError: .*No space left on device.*\nwhat to do: check that Maven"):
        bootstrap.run_step("jars", {})


def test_the_makefile_runs_every_step_make_bootstrap_for_the_rest_make_test_for_images(bootstrap):
    makefile = (ROOT / "Makefile").read_text()
    listed = next(line for line in makefile.splitlines() if line.startswith("BOOTSTRAP_STEPS := "))
    steps = listed.split(":= ", 1)[1].split(",")
    assert steps == [s for s in bootstrap.STEPS if s != "images"]
    assert "--only images" in makefile
