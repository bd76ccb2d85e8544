"""prometheus_client's multiprocess mode for `serve --workers N`: the directory where every worker writes its
values (PROMETHEUS_MULTIPROC_DIR), from the parent process.

prepare() runs before prometheus_client is first imported (it picks how it stores values at import time),
so that the workers, which inherit the environment, all write there. Without PROMETHEUS_MULTIPROC_DIR it
makes a private one (mode 0700, a fresh temporary directory: no earlier run's counters, no file anyone else
can plant), removed by cleanup() when the parent stops. An operator's PROMETHEUS_MULTIPROC_DIR is used as
given but must be an existing, empty directory: files left by an earlier run would add its counters to this
one's and keep its workers' pool gauges alive, and this service never deletes files it did not create.
prepare() again in the same process keeps the directory it made."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

ENV = "PROMETHEUS_MULTIPROC_DIR"

_created: Path | None = None  # the directory prepare() made
_creator_pid: int | None = None  # the process that made it (a forked worker never removes it)


def prepare() -> Path:
    """Before prometheus_client is imported: PROMETHEUS_MULTIPROC_DIR names a directory ready for this run
    (a fresh private one unless the environment names one). Returns it. SystemExit(1) when the one the
    environment names is missing, not a directory, or not empty."""
    global _created, _creator_pid
    given = os.environ.get(ENV)
    if given:
        path = Path(given)
        if _created is not None and path == _created:
            return path  # ours, from an earlier call
        if not path.is_dir():
            log.error("%s=%s is not an existing directory", ENV, given)
            raise SystemExit(1)
        if any(path.iterdir()):
            log.error(
                "%s=%s is not empty: files of an earlier run would be counted with this one's; "
                "empty it, or unset %s to let the service use a private one",
                ENV,
                given,
                ENV,
            )
            raise SystemExit(1)
        return path
    path = Path(tempfile.mkdtemp(prefix="wallet-service-metrics-"))  # mode 0700, owned by this user
    os.environ[ENV] = str(path)
    _created, _creator_pid = path, os.getpid()
    return path


def worker_exited(pid: int) -> None:
    """A worker process is gone: its live gauges (the pool's, mode livesum) stop counting; its counters and
    histograms stay in the sums, as counters must."""
    if not os.environ.get(ENV):
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)


def cleanup() -> None:
    """The parent is stopping: remove the directory prepare() created (never an operator's, never from a
    worker), and forget it."""
    global _created, _creator_pid
    if _created is None or _creator_pid != os.getpid():
        return
    shutil.rmtree(_created, ignore_errors=True)
    if os.environ.get(ENV) == str(_created):
        del os.environ[ENV]
    _created = _creator_pid = None
