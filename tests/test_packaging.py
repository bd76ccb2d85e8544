"""`pip install .` (not editable) must carry everything `wallet-service serve` reads at run time."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_ships_the_sql_the_openapi_document_and_the_command(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
                   check=True)
    (wheel,) = tmp_path.glob("wallet_service-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"service/sql/{p.name}" for p in (ROOT / "sql").glob("*.sql")}
    expected |= {f"service/procedures/{p.name}" for p in (ROOT / "procedures").glob("*.sql")}
    expected |= {"service/openapi.json", "service/server.py", "service/embedded.py", "service/app.py"}
    assert expected <= names, sorted(expected - names)
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "wallet-service = service.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
