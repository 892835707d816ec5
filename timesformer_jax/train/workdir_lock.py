"""One training run per workdir: `workdir/run.lock`, created by the run's main process and removed when it ends.

The file holds the holder's host name and PID. A run that finds it exits at once naming both, unless the holder
is gone: a lock of this host whose process no longer exists (a crash, `kill -9`) is stale and is taken over. A
lock of another host cannot be checked from here; the error says so and how to remove it. Only process 0 of a
multi-host run takes the lock, so every host of one run shares the workdir.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path

LOCK_FILE = "run.lock"


class WorkdirInUseError(RuntimeError):
    """Another live run holds the workdir."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def _holder(path: Path) -> dict | None:
    """The lock's {"host", "pid", "since"}, or None when it is gone or unreadable (a half-written lock)."""
    try:
        holder = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def _create(path: Path) -> bool:
    """Create the lock file atomically; False when it exists."""
    record = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.strftime("%Y-%m-%dT%H:%M:%S")}
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(descriptor, "w") as f:
        json.dump(record, f)
    return True


def acquire(workdir: str | Path, log=print) -> Path:
    """Take `workdir`'s lock, replacing a stale one of this host (logged). WorkdirInUseError naming the
    workdir, the holder's host and PID when a live run holds it."""
    path = Path(workdir) / LOCK_FILE
    for _ in range(3):  # another starter may remove a stale lock between our look and our create
        if _create(path):
            return path
        holder = _holder(path)
        if holder is None:
            time.sleep(0.1)  # being written or removed by another process
            holder = _holder(path)
            if holder is None:
                continue
        host, pid = holder.get("host"), holder.get("pid")
        if host == socket.gethostname() and isinstance(pid, int) and not _alive(pid):
            log(f"{path}: the run that held it (PID {pid}) is gone; taking over")
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            continue
        if host == socket.gethostname() and pid == os.getpid():
            return path  # this process holds it already (train_and_evaluate called twice in one process)
        where = "this host" if host == socket.gethostname() else f"host {host}"
        remedy = ("" if host == socket.gethostname() else
                  f"; if that run is gone, delete {path}")
        raise WorkdirInUseError(
            f"{workdir} is in use by another run (PID {pid} on {where}, since {holder.get('since')}); wait for it "
            f"to end, or use another --workdir{remedy}")
    raise WorkdirInUseError(f"could not take {path}: other processes keep creating and removing it")


def release(path: Path) -> None:
    """Remove the lock if this process holds it."""
    holder = _holder(path)
    if holder and holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def workdir_lock(workdir: str | Path, enabled: bool = True, log=print):
    """Hold `workdir`'s lock for the block (when `enabled`: the main process)."""
    if not enabled:
        yield None
        return
    path = acquire(workdir, log)
    try:
        yield path
    finally:
        release(path)
