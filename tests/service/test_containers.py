"""Static checks that keep Dockerfile and docker-compose.yml honest (no Docker engine runs here)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import yaml

from service.config import Config
from service.listener import SHUTDOWN_TIMEOUT_SECONDS

ROOT = Path(__file__).resolve().parents[2]


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, args = line.partition(" ")
            out.append((instruction.upper(), args.strip()))
    return out


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def exec_form(args: str) -> list[str]:
    return json.loads(args) if args.startswith("[") else shlex.split(args)


def test_dockerfile_installs_the_package_and_runs_wallet_service():
    steps = dockerfile()
    assert steps[0][0] == "FROM" and re.match(r"python:3\.(1[1-9])", steps[0][1])
    runs = " && ".join(args for instr, args in steps if instr == "RUN")
    assert re.search(r"pip install (--no-cache-dir )?\.(\s|$)", runs)
    copied = {exec_form(args)[0] for instr, args in steps if instr == "COPY"}
    # everything `pip install .` needs: the build config, the package, and the SQL it force-includes
    assert {"pyproject.toml", "service", "sql", "procedures"} <= copied
    assert "README.md" in " ".join(args for instr, args in steps if instr == "COPY")  # pyproject's readme
    entrypoint = [exec_form(a) for i, a in steps if i == "ENTRYPOINT"][-1]
    cmd = [exec_form(a) for i, a in steps if i == "CMD"][-1]
    assert entrypoint + cmd == ["wallet-service", "serve"]
    assert ("EXPOSE", "3000") in steps
    assert any(i == "USER" and a not in ("root", "0") for i, a in steps)


def test_compose_runs_postgres_then_migrate_then_the_service():
    services = compose()["services"]
    assert set(services) == {"postgres", "migrate", "wallet-service"}

    pg = services["postgres"]
    assert pg["image"].startswith("postgres:")
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    env = pg["environment"]
    url = f"postgresql://{env['POSTGRES_USER']}:{env['POSTGRES_PASSWORD']}@postgres:5432/{env['POSTGRES_DB']}"

    migrate = services["migrate"]
    assert migrate["build"] == "."
    assert migrate["environment"]["DATABASE_URL"] == url
    script = " ".join(migrate["entrypoint"])
    assert "wallet-service migrate" in script and "wallet-service seed" in script
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"

    app = services["wallet-service"]
    assert app["build"] == "."
    assert app["environment"]["DATABASE_URL"] == url
    assert str(app["environment"]["PORT"]) == "3000"
    assert "3000:3000" in app["ports"]
    assert app["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert app["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert app.get("command", ["serve"]) == ["serve"]
    # docker's stop grace must outlast the service's own graceful-shutdown window
    grace = int(re.fullmatch(r"(\d+)s", app["stop_grace_period"]).group(1))
    assert grace > SHUTDOWN_TIMEOUT_SECONDS


def test_compose_environment_is_what_the_service_reads():
    app = compose()["services"]["wallet-service"]
    config = Config.from_env({k: str(v) for k, v in app["environment"].items()})
    assert config.database_url is not None and config.port == 3000 and config.host == "0.0.0.0"
