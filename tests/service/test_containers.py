"""Static checks that keep Dockerfile and docker-compose.yml honest (no Docker engine runs here): the
entrypoint wrappers and the postgres init script run with stand-ins for wallet-service and psql."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

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


def env_file(name: str) -> dict[str, str]:
    """The variables an env file (its committed .example) defines."""
    out = {}
    for line in (ROOT / f"{name}.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def url_parts(url: str) -> tuple[str | None, str | None, str | None, str]:
    parts = urlsplit(url)
    return parts.username, parts.password, parts.hostname, parts.path.lstrip("/")


OWNER_ENV, SERVICE_ENV = "wallet-owner.env", "wallet-service.env"


def test_compose_runs_postgres_then_migrate_then_the_service():
    services = compose()["services"]
    assert set(services) == {"postgres", "migrate", "wallet-service"}

    pg = services["postgres"]
    assert pg["image"].startswith("postgres:")
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    superuser, dbname = pg["environment"]["POSTGRES_USER"], pg["environment"]["POSTGRES_DB"]

    migrate = services["migrate"]
    assert migrate["build"] == "."
    assert url_parts(migrate["environment"]["DATABASE_URL"]) == (superuser, None, "postgres", dbname)
    assert migrate["command"][0] == "migrate" and "--seed" in migrate["command"]
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"

    app = services["wallet-service"]
    assert app["build"] == "."
    assert url_parts(app["environment"]["DATABASE_URL"])[1:] == (None, "postgres", dbname)
    assert str(app["environment"]["PORT"]) == "3000"
    assert "3000:3000" in app["ports"]
    assert app["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert app["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert app["command"] == ["serve"]
    # docker's stop grace must outlast the service's own graceful-shutdown window
    grace = int(re.fullmatch(r"(\d+)s", app["stop_grace_period"]).group(1))
    assert grace > SHUTDOWN_TIMEOUT_SECONDS


def test_each_credential_reaches_only_the_containers_that_need_it():
    """Owner (superuser) vs service (wallet_app only): each password in its own env file, never inline; the
    service never sees the owner's; the real files are git-ignored and kept out of the image."""
    services = compose()["services"]
    assert services["postgres"]["env_file"] == [OWNER_ENV, SERVICE_ENV]  # it creates both roles
    assert services["migrate"]["env_file"] == [OWNER_ENV]
    assert services["wallet-service"]["env_file"] == [SERVICE_ENV]
    assert set(env_file(OWNER_ENV)) == {"POSTGRES_PASSWORD"}
    assert set(env_file(SERVICE_ENV)) == {"WALLET_SERVICE_PASSWORD"}
    text = (ROOT / "docker-compose.yml").read_text()
    for service in services.values():
        for key, value in service.get("environment", {}).items():
            assert "PASSWORD" not in key, key
            assert "://" not in str(value) or urlsplit(str(value)).password is None, value
    for example in (OWNER_ENV, SERVICE_ENV):
        assert env_file(example)  # documented
        for value in env_file(example).values():
            assert value not in text
    patterns = [p for p in (ROOT / ".gitignore").read_text().splitlines() if p and not p.startswith("#")]
    assert not [p for p in patterns if p.startswith("!")]  # (no negation to evaluate)
    candidates = [OWNER_ENV, SERVICE_ENV, f"{OWNER_ENV}.example", f"{SERVICE_ENV}.example"]
    ignored = [name for name in candidates if any(fnmatch.fnmatch(name, p) for p in patterns)]
    assert ignored == [OWNER_ENV, SERVICE_ENV]
    dockerignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*.env" in dockerignore and "*.env.example" in dockerignore


def _fake_command(bin_dir: Path, name: str, out: Path) -> None:
    """A stand-in `name` on PATH that records its arguments, PGPASSWORD and stdin in `out`."""
    script = bin_dir / name
    script.write_text(f"#!/bin/sh\n{{ printf '%s\\n' \"$@\"; echo \"PGPASSWORD=${{PGPASSWORD-}}\"; cat; }} > '{out}'\n")
    script.chmod(0o755)


def _run_entrypoint(service: dict, env: dict[str, str], tmp_path: Path) -> list[str]:
    """The service's entrypoint + command as docker runs them ($$ is compose's escape for $), with a fake
    wallet-service: what it was called with and PGPASSWORD."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    out = tmp_path / "called"
    _fake_command(bin_dir, "wallet-service", out)
    argv = [part.replace("$$", "$") for part in service["entrypoint"] + service["command"]]
    full_env = {"PATH": f"{bin_dir}:/usr/bin:/bin", **env}
    subprocess.run(argv, env=full_env, stdin=subprocess.DEVNULL, check=True)
    return out.read_text().splitlines()


def test_each_container_connects_with_its_own_password(tmp_path):
    services = compose()["services"]
    owner, service = env_file(OWNER_ENV), env_file(SERVICE_ENV)
    called = _run_entrypoint(services["migrate"], owner, tmp_path)
    assert called == [*services["migrate"]["command"], f"PGPASSWORD={owner['POSTGRES_PASSWORD']}"]
    called = _run_entrypoint(services["wallet-service"], service, tmp_path)
    assert called == ["serve", f"PGPASSWORD={service['WALLET_SERVICE_PASSWORD']}"]


def test_the_service_login_is_created_granted_and_used_under_one_name(tmp_path):
    """postgres's init creates the login with the service's password, migrate --app-login grants it
    wallet_app, the service's DATABASE_URL connects as it."""
    services = compose()["services"]
    pg = services["postgres"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in pg["volumes"] if v.startswith("./")}
    init_dir = ROOT / mounts["/docker-entrypoint-initdb.d"]
    (script,) = sorted(init_dir.iterdir())
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    out = tmp_path / "psql"
    _fake_command(bin_dir, "psql", out)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", **pg["environment"], **env_file(SERVICE_ENV)}
    subprocess.run(["sh", str(script)], env=env, stdin=subprocess.DEVNULL, check=True)
    psql = out.read_text()
    assert f"password={env_file(SERVICE_ENV)['WALLET_SERVICE_PASSWORD']}" in psql.splitlines()
    (created,) = re.findall(r"CREATE ROLE (\w+) LOGIN PASSWORD :'password';", psql)
    command = services["migrate"]["command"]
    assert command[command.index("--app-login") + 1] == created
    assert url_parts(services["wallet-service"]["environment"]["DATABASE_URL"])[0] == created


def test_the_service_containers_are_locked_down():
    services = compose()["services"]
    for name in ("migrate", "wallet-service"):
        service = services[name]
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
        assert "/tmp" in service["tmpfs"], name
    # PostgreSQL's entrypoint must switch to its own user (it needs its capabilities), but gains nothing new
    assert "no-new-privileges:true" in services["postgres"]["security_opt"]


def test_compose_environment_is_what_the_service_reads():
    app = compose()["services"]["wallet-service"]
    config = Config.from_env({k: str(v) for k, v in app["environment"].items()})
    assert config.database_url is not None and config.port == 3000 and config.host == "0.0.0.0"
    # the pools of all workers fit in postgres' default max_connections (100), with room for psql and migrate
    assert config.workers >= 1 and config.workers * config.pool_max_size <= 50
