"""deploy/compose.yaml: every reference resolves (services, mounted files, the build
context, volumes, variables), the three gateways' config loads with llmrelay's own loader,
and nginx, Prometheus and the gateways agree on names and ports. `docker compose config`
runs too when the compose plugin is installed (skipped, saying so, when it is not)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmrelay.config.loader import load_settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / ".env.example"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return doc


def env_example() -> dict[str, str]:
    pairs = (
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line and not line.startswith("#")
    )
    return {k: v for k, v in pairs}


def test_three_gateways_behind_a_load_balancer_with_stores_and_prometheus(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert services["llmrelay"]["deploy"]["replicas"] == 3
    assert {"lb", "postgres", "redis", "prometheus", "migrate"} <= services.keys()
    assert services["migrate"]["command"][:2] == ["db", "upgrade"]
    gateway_needs = services["llmrelay"]["depends_on"]
    assert gateway_needs["migrate"] == {"condition": "service_completed_successfully"}
    assert services["lb"]["ports"] == ["${LLMRELAY_PORT:-4000}:4000"]


def test_every_reference_resolves(compose: dict[str, Any]) -> None:
    services = compose["services"]
    declared_volumes = set(compose.get("volumes") or {})
    for name, svc in services.items():
        for needed in svc.get("depends_on") or []:
            assert needed in services, f"{name} depends on unknown {needed}"
        for mount in svc.get("volumes") or []:
            source = mount.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in declared_volumes, f"{name} uses undeclared volume {source}"
        build = svc.get("build")
        if build is not None:
            assert (DEPLOY / build["context"] / build["dockerfile"]).is_file()


def test_every_required_variable_is_in_the_env_example() -> None:
    required = set(re.findall(r"\$\{(\w+):\?", COMPOSE.read_text()))
    assert required == {"LLMRELAY_GATEWAY_KEY", "POSTGRES_PASSWORD", "GRAFANA_ADMIN_PASSWORD"}
    assert required <= env_example().keys()


def test_gateway_config_loads_and_uses_the_shared_stores(compose: dict[str, Any]) -> None:
    gateway = compose["services"]["llmrelay"]
    (mount,) = gateway["volumes"]
    source, target, _ = mount.split(":")
    assert target == "/etc/llmrelay/config.yaml"  # where the image's CMD reads it
    env = {k: str(v) for k, v in gateway["environment"].items()}
    env = {k: re.sub(r"\$\{[^}]+\}", "x", v) for k, v in env.items()}  # compose's, not ours
    env["LLMRELAY_GATEWAY_KEY"] = env_example()["LLMRELAY_GATEWAY_KEY"]
    settings = load_settings(DEPLOY / source, env=env)
    assert settings.database_url().startswith("postgresql://llmrelay:")
    assert settings.database_url().endswith("@postgres:5432/llmrelay")
    assert settings.redis is not None and settings.redis.url == "redis://redis:6379/0"
    assert settings.usage_path().is_absolute()  # not next to the read-only config
    port = settings.server.port
    nginx = (DEPLOY / "nginx" / "nginx.conf").read_text()
    assert f"server llmrelay:{port} resolve;" in nginx
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    (job,) = prometheus["scrape_configs"]
    assert job["dns_sd_configs"] == [
        {"names": ["llmrelay"], "type": "A", "port": port, "refresh_interval": "15s"}
    ]


def test_stop_grace_covers_the_gateway_drain(compose: dict[str, Any]) -> None:
    grace = compose["services"]["llmrelay"]["stop_grace_period"]
    # the longest shutdown with the defaults: grace 5 + drain 600 + 5 + flush 5 + 10
    assert grace.endswith("m") and int(grace[:-1]) * 60 > 5 + 600 + 5 + 5 + 10


def test_grafana_provisioning_loads_the_dashboard(compose: dict[str, Any]) -> None:
    mounts = compose["services"]["grafana"]["volumes"]
    dashboards = yaml.safe_load(
        (DEPLOY / "grafana/provisioning/dashboards/llmrelay.yaml").read_text()
    )
    folder = dashboards["providers"][0]["options"]["path"]
    assert f"./grafana/llmrelay.json:{folder}/llmrelay.json:ro" in mounts


def compose_plugin() -> str | None:
    docker = shutil.which("docker")
    if docker is None:
        return None
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=20)
    return docker if probe.returncode == 0 else None


@pytest.mark.skipif(compose_plugin() is None, reason="the docker compose plugin is not installed")
def test_docker_compose_config_accepts_the_file() -> None:
    docker = compose_plugin()
    assert docker is not None
    out = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE), "--env-file", str(ENV_EXAMPLE), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr


def test_prometheus_and_grafana_listen_on_this_machine_only_and_grafana_needs_a_login(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert services["prometheus"]["ports"] == ["127.0.0.1:9090:9090"]
    assert services["grafana"]["ports"] == ["127.0.0.1:3000:3000"]
    grafana = services["grafana"]["environment"]
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert grafana["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")
