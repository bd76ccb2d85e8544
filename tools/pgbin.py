"""Where the PostgreSQL server binaries are: the newest Debian install, /usr/lib/postgresql/<version>/bin,
that holds pg_ctl (a client-only install of a newer version has a bin/ folder without it).

WALLET_PG_BINDIR, when set, names the folder instead; tests/pg_ctl_as_postgres honours the same variable,
so a Python caller that exports it (export_bindir) makes the shell wrapper use the same binaries.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

ENV = "WALLET_PG_BINDIR"
DEBIAN_ROOT = Path("/usr/lib/postgresql")


def _version(name: str) -> tuple[int, ...]:
    """'16' -> (16,), '9.6' -> (9, 6); a folder not named like a version sorts first."""
    return tuple(int(part) for part in re.findall(r"\d+", name)) or (-1,)


def bindir(root: Path = DEBIAN_ROOT) -> Path:
    """The folder holding pg_ctl, initdb, pgbench...: $WALLET_PG_BINDIR, or the newest server install."""
    chosen = os.environ.get(ENV)
    if chosen:
        if not (Path(chosen) / "pg_ctl").exists():
            raise RuntimeError(f"{ENV}={chosen} holds no pg_ctl")
        return Path(chosen)
    found = sorted(root.glob("*/bin/pg_ctl"), key=lambda p: _version(p.parent.parent.name))
    if not found:
        raise RuntimeError(
            f"no PostgreSQL server binaries under {root}: apt-get install -y postgresql (scripts/test does this)"
        )
    return found[-1].parent


def export_bindir() -> Path:
    """bindir(), also exported as WALLET_PG_BINDIR for child processes (tests/pg_ctl_as_postgres)."""
    found = bindir()
    os.environ[ENV] = str(found)
    return found


def ensure_extension(extension: str, package: str, server_bindir: Path | None = None) -> None:
    """Install Debian's postgresql-<version>-<package> for the server in server_bindir (default: bindir()) if
    `extension` is missing (apt-get update first only when the install fails: a fresh machine has no package
    lists yet)."""
    version = (server_bindir or bindir()).parent.name
    if Path(f"/usr/share/postgresql/{version}/extension/{extension}.control").exists():
        return
    apt = shutil.which("apt-get")
    if apt is None:
        raise RuntimeError(f"{extension} is not installed for PostgreSQL {version} and apt-get is missing")
    install = [apt, "install", "-y", "--no-install-recommends", f"postgresql-{version}-{package}"]
    if subprocess.run(install).returncode != 0:
        subprocess.run([apt, "update"], check=True)
        subprocess.run(install, check=True)
