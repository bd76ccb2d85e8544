"""`pip install .` (not editable) must carry everything `wallet-service` reads at run time."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(ROOT)], check=True)
    (built,) = out.glob("wallet_service-*.whl")
    return built


def test_wheel_ships_the_sql_the_openapi_document_and_the_command(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"service/sql/{p.name}" for p in (ROOT / "sql").glob("*.sql")}
    expected |= {f"service/procedures/{p.name}" for p in (ROOT / "procedures").glob("*.sql")}
    expected |= {f"service/proxy/{p.name}" for p in (ROOT / "proxy").glob("*.sql")}
    expected |= {
        "service/openapi.json",
        "service/server.py",
        "service/embedded.py",
        "service/app.py",
        "service/auth.py",
    }
    assert expected <= names, sorted(expected - names)
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "wallet-service = service.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_wheel_leaves_the_development_tools_out(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if n.startswith(("tools/", "tests/")) or "torture" in n or "bench" in n], names


def test_the_command_imports_no_development_tool():
    probe = (
        "import sys, service.cli; service.cli.build_parser(); "
        "print(sorted(m for m in sys.modules if m.startswith('tools')))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_installed_wheel_migrates_from_its_own_files(wheel, tmp_path, empty_db_url):
    """A fresh venv with only the wheel (dependencies borrowed from this venv, not its checkout)."""
    venv = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [venv / "bin/pip", "install", "-q", "--no-deps", "--disable-pip-version-check", str(wheel)], check=True
    )
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    fresh_site = Path(
        subprocess.run([venv / "bin/python", "-c", purelib], capture_output=True, text=True, check=True).stdout.strip()
    )
    (fresh_site / "borrowed_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"DATABASE_URL": empty_db_url}
    where = subprocess.run(
        [
            venv / "bin/python",
            "-c",
            "from service import docs, schema; "
            "print(schema.resource_dir('sql')); print(schema.resource_dir('procedures')); "
            "print(schema.resource_dir('proxy')); "
            "print(docs.OPENAPI_PATH)",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert all(Path(p).is_relative_to(fresh_site) and Path(p).exists() for p in where), where
    result = subprocess.run(
        [venv / "bin/wallet-service", "migrate"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    with psycopg.connect(empty_db_url) as conn:
        assert conn.execute("SELECT count(*) FROM assets").fetchone()[0] == 3
        assert conn.execute("SELECT to_regproc('wallet_topup') IS NOT NULL").fetchone()[0]
