"""What the node touches on the host, recorded before it starts and put back after it stops: the sysctls the
kubelet rewrites, the fixed folders it creates, its cgroups, and the mounts under its state folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import structlog

log = structlog.get_logger("node-host")

# The kubelet sets these even with protectKernelDefaults: false; panic_on_oops=1 would turn a kernel oops into
# a panic of the whole (shared) machine, so they are always put back.
SYSCTLS = ("kernel.panic", "kernel.panic_on_oops", "vm.overcommit_memory")
# Created by the kubelet whatever its --root-dir says.
FIXED_DIRS = (Path("/var/lib/kubelet"), Path("/var/log/containers"))
CGROUP_ROOT = Path("/sys/fs/cgroup")
CNI_CACHE = Path("/var/lib/cni/results")


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def read_sysctls() -> dict[str, str]:
    return {name: _sysctl_path(name).read_text().strip() for name in SYSCTLS}


def write_sysctls(values: dict[str, str]) -> None:
    for name, value in values.items():
        if _sysctl_path(name).read_text().strip() != value:
            _sysctl_path(name).write_text(value)
            log.info("sysctl_restored", name=name, value=value)


def hierarchies() -> list[Path]:
    """Every cgroup hierarchy: one per v1 controller, the named systemd one and the unified (v2) mount of this
    hybrid host, where runc also places each container."""
    mounts = Path("/proc/self/mounts").read_text().splitlines()
    return sorted({Path(line.split()[1]) for line in mounts if line.split()[2] in ("cgroup", "cgroup2")})


def create_cgroups(name: str) -> None:
    for hierarchy in hierarchies():
        group = hierarchy / name
        group.mkdir(exist_ok=True)
        for knob in ("cpuset.cpus", "cpuset.mems"):  # an empty cpuset refuses every task
            if (hierarchy / knob).exists():
                (group / knob).write_text((hierarchy / knob).read_text())


def remove_cgroups(name: str, timeout: float = 10) -> list[str]:
    """Remove <hierarchy>/<name> depth-first in every hierarchy; returns what could not be removed."""
    left: list[str] = []
    for hierarchy in hierarchies():
        top = hierarchy / name
        if not top.exists():
            continue
        for group in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            _rmdir(group, timeout)
        if not _rmdir(top, timeout):
            left.append(str(top))
    return left


def _rmdir(group: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        try:
            group.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError:
            if time.monotonic() > deadline:
                log.warning("cgroup_left", cgroup=str(group), tasks=_tasks(group))
                return False
            time.sleep(0.1)


def _tasks(group: Path) -> str:
    try:
        return (group / "tasks").read_text().replace("\n", " ")[:200]
    except OSError:
        return ""


def mounts_under(prefix: Path) -> list[str]:
    found = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        target = line.split()[1].replace("\\040", " ")
        if target == str(prefix) or target.startswith(f"{prefix}/"):
            found.append(target)
    return found


def unmount_under(prefixes: list[Path]) -> None:
    """Unmount (deepest first) what the node mounted under its folders; lazily if busy."""
    for prefix in prefixes:
        for target in sorted(mounts_under(prefix), key=len, reverse=True):
            if subprocess.run(["umount", target], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", target], capture_output=True)


class HostState:
    """Recorded before the node starts; `restore()` puts it back (idempotent). `as_dict`/`from_dict` let a later
    run restore what a killed one recorded."""

    def __init__(self, record: dict | None = None) -> None:
        record = record or {
            "sysctls": read_sysctls(), "missing_dirs": [str(d) for d in FIXED_DIRS if not d.exists()],
            "cni_cache": sorted(os.listdir(CNI_CACHE)) if CNI_CACHE.exists() else [],
            "cni_dir_existed": CNI_CACHE.parent.exists(),
        }
        self.sysctls: dict[str, str] = record["sysctls"]
        self.missing_dirs = [Path(d) for d in record["missing_dirs"]]
        self.cni_cache = set(record["cni_cache"])
        self.cni_dir_existed: bool = record["cni_dir_existed"]

    def as_dict(self) -> dict:
        return {"sysctls": self.sysctls, "missing_dirs": [str(d) for d in self.missing_dirs],
                "cni_cache": sorted(self.cni_cache), "cni_dir_existed": self.cni_dir_existed}

    def restore_sysctls(self) -> None:
        write_sysctls(self.sysctls)

    def restore(self) -> None:
        write_sysctls(self.sysctls)
        for directory in self.missing_dirs:
            unmount_under([directory])
            shutil.rmtree(directory, ignore_errors=True)
        if CNI_CACHE.exists():
            for entry in set(os.listdir(CNI_CACHE)) - self.cni_cache:
                (CNI_CACHE / entry).unlink(missing_ok=True)
        if not self.cni_dir_existed:
            shutil.rmtree(CNI_CACHE.parent, ignore_errors=True)
