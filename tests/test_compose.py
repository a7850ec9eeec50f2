"""The production stack: docker-compose.yml validated by Debian's docker-compose."""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path

import yaml

ROOT = Path(__file__).parent.parent
COMPOSE = "/usr/bin/docker-compose"
COMPOSE_PRESENT = Path(COMPOSE).exists()


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
    assert {"postgres-data", "worker-data", "web-data", "registry"} <= set(spec["volumes"])
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


async def test_the_page_and_the_worker_share_no_writable_state(tmp_path: Path) -> None:
    """Issue #20, item 5: each keeps its state in its own volume; the registry is mounted
    read-only into both and written only by the administrator's one-off container, whose
    key comes from the host. Neither can add an approver or sign as one."""
    folder = stack(tmp_path)
    code, out = await compose(
        folder, "--env-file", "deploy/tiergate.env", "--profile", "admin", "config"
    )
    assert code == 0, out
    services = yaml.safe_load(out)["services"]

    def mounts(name: str) -> dict[str, bool]:
        """Named volume -> mounted read-only, for ``name`` (short or long syntax)."""
        found = {}
        for volume in services[name].get("volumes", []):
            if isinstance(volume, str):
                source, _, rest = volume.partition(":")
                read_only = rest.endswith(":ro")
            else:
                source, read_only = volume["source"], bool(volume.get("read_only"))
            if not source.startswith((".", "/")):
                found[source] = read_only
        return found

    worker, web, admin = mounts("worker"), mounts("approvals-web"), mounts("admin")
    writable = {
        name: {v for v, ro in m.items() if not ro}
        for name, m in {"worker": worker, "web": web}.items()
    }
    assert writable == {"worker": {"worker-data"}, "web": {"web-data"}}
    assert worker["registry"] is True
    assert web["registry"] is True
    assert admin == {"registry": False}
    for name in ("worker", "approvals-web"):
        assert services[name]["environment"]["TIERGATE_REGISTRY_DIR"] == "/registry"
        assert "TIERGATE_ADMIN_KEY" not in services[name]["environment"]
    assert services["admin"]["environment"]["TIERGATE_ADMIN_KEY"] == "/admin/admin.pem"
    assert services["admin"]["profiles"] == ["admin"]


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
        assert re.fullmatch(r"postgresql://temporal:change-me@postgresql:5432/tiergate", url)
        assert environment["TIERGATE_CONTENT_URL"] == "database"
    assert "postgresql" in services["worker"]["depends_on"]
    init = (ROOT / "deploy" / "postgres-init" / "10-tiergate.sql").read_text()
    assert "CREATE DATABASE tiergate;" in init
    assert any(
        "/docker-entrypoint-initdb.d" in str(volume) for volume in services["postgresql"]["volumes"]
    )
    assert "'.[postgres]'" in (ROOT / "Dockerfile").read_text()
