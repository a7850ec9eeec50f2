"""The production stack: docker-compose.yml validated by Debian's docker-compose."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import psycopg
import pytest
import yaml

from tests.postgres import PostgresCluster
from tests.postgres import binary as pg_binary
from tiergate.approvals import Credentials
from tiergate.control import CapLedger
from tiergate.core import Cap
from tiergate.demo import SupportStore
from tiergate.errors import StateError
from tiergate.state import close_all, open_database

ROOT = Path(__file__).parent.parent
COMPOSE = "/usr/bin/docker-compose"
COMPOSE_PRESENT = Path(COMPOSE).exists()
TIERGATE = str(ROOT / ".venv" / "bin" / "tiergate")
CAP = Cap(name="daily", tools=["payments.issue_refund"], window="day", max_calls=3)


async def compose(folder: Path, *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        COMPOSE,
        *args,
        cwd=folder,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode()


def stack(tmp_path: Path) -> Path:
    folder = tmp_path / "stack"
    shutil.copytree(ROOT / "deploy", folder / "deploy")
    shutil.copy(ROOT / "docker-compose.yml", folder)
    shutil.copy(ROOT / "deploy" / "tiergate.env.example", folder / "deploy" / "tiergate.env")
    return folder


async def test_the_compose_file_validates_and_has_every_service_the_readme_names(
    tmp_path: Path,
) -> None:
    assert COMPOSE_PRESENT, "docker-compose is missing: `make test` installs Debian's"
    folder = stack(tmp_path)
    code, out = await compose(folder, "--env-file", "deploy/tiergate.env", "config", "-q")
    assert code == 0, out
    code, out = await compose(folder, "--env-file", "deploy/tiergate.env", "config", "--services")
    assert code == 0, out
    services = set(out.split())
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Production stack") :]
    named = set(re.findall(r"^\| `([a-z-]+)` \|", section, re.MULTILINE))
    assert named, "the README's production stack table names no services"
    assert named == services


async def test_no_secret_lives_in_the_compose_file(tmp_path: Path) -> None:
    spec = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name, service in spec["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|SECRET|KEY|TOKEN", key):
                assert str(value).startswith("${"), f"{name}.{key} must come from the env file"
        assert "restart" in service, f"{name} has no restart policy"
    assert set(spec["volumes"]) == {"postgres-data", "prometheus-data"}
    # Without the env file's password the stack refuses to render, naming the fix.
    folder = stack(tmp_path)
    code, out = await compose(folder, "config", "-q")
    assert code != 0
    assert "set POSTGRES_PASSWORD in the env file" in out


async def test_only_the_approvals_page_is_published(tmp_path: Path) -> None:
    """Issue #20, item 8: the Temporal frontend, its UI, Jaeger and Prometheus stay on the
    stack's network; the `ops` profile's forwarders publish them on the host's loopback."""
    folder = stack(tmp_path)
    code, out = await compose(folder, "--env-file", "deploy/tiergate.env", "config")
    assert code == 0, out
    services = yaml.safe_load(out)["services"]
    published = {name for name, service in services.items() if service.get("ports")}
    ops = {name for name, service in services.items() if "ops" in service.get("profiles", [])}
    assert published - ops == {"approvals-web"}
    assert ops == {"temporal-port", "temporal-ui-port", "jaeger-port", "prometheus-port"}
    for name in ops:
        for port in services[name]["ports"]:
            host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
            assert host_ip == "127.0.0.1", (name, port)


async def test_workers_and_the_page_mount_nothing_and_have_roles_of_their_own(
    tmp_path: Path,
) -> None:
    """Issue #23, item 5: no volume is shared; workers and the page reach PostgreSQL only,
    each as a role of its own; only the store job and the administrator's one-off
    container use the owner role, and only the administrator's holds the key."""
    folder = stack(tmp_path)
    code, out = await compose(
        folder, "--env-file", "deploy/tiergate.env", "--profile", "admin", "config"
    )
    assert code == 0, out
    services = yaml.safe_load(out)["services"]
    for name in ("worker", "approvals-web", "store"):
        assert not services[name].get("volumes"), f"{name} mounts {services[name]['volumes']}"
    users: Counter[str] = Counter()
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume["source"] if isinstance(volume, dict) else volume.split(":")[0]
            if not source.startswith((".", "/")):
                users[source] += 1
    assert all(count == 1 for count in users.values()), users
    roles = {
        name: services[name]["environment"]["TIERGATE_DATABASE_URL"].split("//")[1].split(":")[0]
        for name in ("worker", "approvals-web", "store", "admin")
    }
    assert roles == {
        "worker": "tiergate_worker",
        "approvals-web": "tiergate_web",
        "store": "temporal",
        "admin": "temporal",
    }
    assert services["worker"]["environment"]["TIERGATE_STORE_URL"].endswith(
        "@postgresql:5432/support"
    )
    assert (
        services["worker"]["depends_on"]["store"]["condition"] == "service_completed_successfully"
    )
    for name, service in services.items():
        environment = service.get("environment") or {}
        assert "TIERGATE_REGISTRY_DIR" not in environment, name
        if name != "admin":
            assert "TIERGATE_ADMIN_KEY" not in environment, name
    assert services["admin"]["environment"]["TIERGATE_ADMIN_KEY"] == "/admin/admin.pem"
    assert services["admin"]["profiles"] == ["admin"]


async def test_the_init_script_and_the_store_job_give_each_role_its_part(
    tmp_path: Path, postgres: PostgresCluster
) -> None:
    """The stack's own init script and `store` command, run against a real PostgreSQL:
    the worker role counts caps and owns the support database, and is refused a sign-in
    link; the page role keeps sessions and is refused caps."""
    folder = stack(tmp_path)
    code, out = await compose(folder, "--env-file", "deploy/tiergate.env", "config")
    assert code == 0, out
    job = yaml.safe_load(out)["services"]["store"]["command"]
    set_up_like_the_stack(postgres, job, tmp_path)


def set_up_like_the_stack(postgres: PostgresCluster, job: list[str], tmp_path: Path) -> None:
    psql = Path(pg_binary("psql")).parent
    env = {
        "PATH": f"{psql}:/usr/bin:/bin",
        "POSTGRES_USER": "tiergate",
        "PGHOST": "127.0.0.1",
        "PGPORT": str(postgres.port),
        "TIERGATE_WORKER_DB_PASSWORD": "change-me-too",
        "TIERGATE_WEB_DB_PASSWORD": "change-me-three",
    }
    script = ROOT / "deploy" / "postgres-init" / "10-tiergate.sh"
    try:
        done = subprocess.run(
            ["sh", str(script)], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
        owner = postgres.url("tiergate")
        done = subprocess.run(
            [TIERGATE, *job],
            env={"PATH": "/usr/bin:/bin", "TIERGATE_DATABASE_URL": owner,
                 "TIERGATE_HOME": str(tmp_path / "store"), "TIERGATE_TELEMETRY": "false"},
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        Credentials(open_database(owner)).set_password("lead", "lead-password-1")
        as_role = f"postgresql://{{}}@127.0.0.1:{postgres.port}/{{}}"
        worker = open_database(as_role.format("tiergate_worker", "tiergate"))
        CapLedger(worker).charge("refunds", (CAP,), {}, "run/1/step-1")
        with pytest.raises(StateError, match="permission denied"):
            Credentials(worker).issue_token("lead")
        support = SupportStore(as_role.format("tiergate_worker", "support"))
        support.seed_demo()
        assert len(support.rows("orders")) == 6
        support.close()
        web = open_database(as_role.format("tiergate_web", "tiergate"))
        assert Credentials(web).verify_password("lead", "lead-password-1")
        with pytest.raises(StateError, match="permission denied"):
            CapLedger(web).charge("refunds", (CAP,), {}, "run/2/step-1")
    finally:
        close_all()
        with psycopg.connect(postgres.url(), autocommit=True) as conn:
            for database in ("tiergate", "support"):
                conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
            for role in ("tiergate_worker", "tiergate_web"):
                conn.execute(f"DROP ROLE IF EXISTS {role}")


async def test_workers_and_the_page_reach_the_shared_store_in_postgres(tmp_path: Path) -> None:
    """Issue #23: the kill switch, rollouts, caps and content live in the stack's
    PostgreSQL (a `tiergate` database its init script makes), not in a volume."""
    folder = stack(tmp_path)
    code, out = await compose(folder, "--env-file", "deploy/tiergate.env", "config")
    assert code == 0, out
    services = yaml.safe_load(out)["services"]
    for name in ("worker", "approvals-web"):
        environment = services[name]["environment"]
        url = environment["TIERGATE_DATABASE_URL"]
        assert re.fullmatch(
            r"postgresql://tiergate_\w+:change-me-\w+@postgresql:5432/tiergate", url
        )
        assert environment["TIERGATE_CONTENT_URL"] == "database"
    assert "postgresql" in services["store"]["depends_on"]
    init = (ROOT / "deploy" / "postgres-init" / "10-tiergate.sh").read_text()
    assert "CREATE DATABASE tiergate;" in init
    assert any(
        "/docker-entrypoint-initdb.d" in str(volume) for volume in services["postgresql"]["volumes"]
    )
    assert "'.[postgres,s3]'" in (ROOT / "Dockerfile").read_text()
