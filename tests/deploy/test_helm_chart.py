"""deploy/helm/llmrelay: rendered by the real helm (installed by `make test`, see
deploy/helm/install_helm.py) and every object validated against the Kubernetes schemas
(kubernetes-validate, strict: unknown fields are errors), for the default values and for
ci/all-on-values.yaml; then what the schemas cannot see: selectors that match, probes on
the right paths, a grace period longer than the drain, secrets only by reference."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from llmrelay import __version__
from llmrelay.config import ConfigError
from llmrelay.config.loader import parse_settings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "llmrelay"
ALL_ON = CHART / "ci" / "all-on-values.yaml"
#: The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest schema set.
KUBE_VERSIONS = ("1.29", kubernetes_validate.utils.latest_version())
#: Custom resources whose schemas are not Kubernetes' own: kubernetes-validate has none for
#: them, so they are checked by hand below (test_service_monitor_scrapes_the_service).
CRDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}
RENDERINGS = {"default": [], "all-on": ["-f", str(ALL_ON)]}


def helm() -> str:
    """The helm binary: next to this Python (where `make test` puts it) or on PATH."""
    local = Path(sys.executable).parent / "helm"
    found = str(local) if local.exists() else shutil.which("helm")
    if found is None:
        pytest.fail(f"helm is not installed: run `python {CHART.parent}/install_helm.py {local}`")
    return found


def render(args: list[str]) -> list[dict[str, Any]]:
    out = subprocess.run(
        [helm(), "template", "rel", str(CHART), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.fixture(scope="module", params=sorted(RENDERINGS))
def rendered(request: pytest.FixtureRequest) -> list[dict[str, Any]]:
    return render(RENDERINGS[request.param])


def one(objects: list[dict[str, Any]], kind: str, hook: bool = False) -> dict[str, Any]:
    found = [
        o
        for o in objects
        if o["kind"] == kind
        and ("helm.sh/hook" in (o["metadata"].get("annotations") or {})) == hook
    ]
    assert len(found) == 1, f"{len(found)} {kind} objects"
    return found[0]


def test_helm_lint_passes_for_both_value_sets() -> None:
    for args in RENDERINGS.values():
        out = subprocess.run(
            [helm(), "lint", "--strict", str(CHART), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_every_object_is_valid_for_kubernetes(
    rendered: list[dict[str, Any]], kube_version: str
) -> None:
    checked = 0
    for obj in rendered:
        if (obj["apiVersion"], obj["kind"]) in CRDS:
            continue
        kubernetes_validate.validate(obj, kube_version, strict=True)
        checked += 1
    assert checked >= 6  # ServiceAccount, ConfigMap, Service, Deployment, PDB, Job (+hook CM)


def test_default_values_make_the_objects_a_release_needs() -> None:
    kinds = sorted(o["kind"] for o in render([]))
    assert kinds == [
        "ConfigMap",
        "ConfigMap",  # the migration hook's copy
        "Deployment",
        "Job",
        "PodDisruptionBudget",
        "Service",
        "ServiceAccount",
    ]


def test_all_on_values_add_hpa_ingress_and_service_monitor() -> None:
    objects = render(RENDERINGS["all-on"])
    kinds = {o["kind"] for o in objects}
    assert {"HorizontalPodAutoscaler", "Ingress", "ServiceMonitor"} <= kinds
    deployment = one(objects, "Deployment")
    assert "replicas" not in deployment["spec"]  # the HPA owns the count
    hpa = one(objects, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert hpa["spec"]["minReplicas"] == 3


def test_selectors_match_the_gateway_pods_and_not_the_migration_job(
    rendered: list[dict[str, Any]],
) -> None:
    deployment = one(rendered, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    job_labels = one(rendered, "Job", hook=True)["spec"]["template"]["metadata"]["labels"]
    selectors = [
        deployment["spec"]["selector"]["matchLabels"],
        one(rendered, "Service")["spec"]["selector"],
        one(rendered, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
    ]
    for selector in selectors:
        assert selector.items() <= pod_labels.items()
        assert not selector.items() <= job_labels.items()


def test_probes_and_grace_period_cover_the_drain(rendered: list[dict[str, Any]]) -> None:
    pod = one(rendered, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["livenessProbe"]["httpGet"] == {
        "path": "/health",
        "port": "http",
        "scheme": "HTTP",
    }
    assert container["readinessProbe"]["httpGet"] == {
        "path": "/ready",
        "port": "http",
        "scheme": "HTTP",
    }
    assert container["startupProbe"]["httpGet"] == {
        "path": "/health",
        "port": "http",
        "scheme": "HTTP",
    }
    config = yaml.safe_load(one(rendered, "ConfigMap")["data"]["config.yaml"])
    server = config.get("server", {})
    # docs/operations.md: the longest shutdown is shutdown_grace_s + drain_timeout_s + 5 s
    # + usage.shutdown_timeout_s + 10 s (a stuck store thread); the gateway's defaults
    longest = server.get("shutdown_grace_s", 5) + server.get("drain_timeout_s", 600) + 5
    longest += config.get("usage", {}).get("shutdown_timeout_s", 5) + 10
    sleep = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
    assert sleep > 0
    assert pod["terminationGracePeriodSeconds"] > sleep + longest
    assert container["ports"][0]["containerPort"] == server.get("port", 4000)


def test_config_holds_no_secret_and_every_variable_comes_from_a_secret_ref(
    rendered: list[dict[str, Any]],
) -> None:
    import re

    text = one(rendered, "ConfigMap")["data"]["config.yaml"]
    wanted = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", text))
    assert wanted  # the keys are all ${VAR}
    for pod_owner in (one(rendered, "Deployment"), one(rendered, "Job", hook=True)):
        (container,) = pod_owner["spec"]["template"]["spec"]["containers"]
        from_secrets = {e["name"] for e in container["env"] if "valueFrom" in e}
        assert wanted <= from_secrets
        for e in container["env"]:
            if e["name"] in wanted:
                assert set(e["valueFrom"]) == {"secretKeyRef"}


def test_migration_job_runs_db_upgrade_as_a_pre_install_hook(
    rendered: list[dict[str, Any]],
) -> None:
    job = one(rendered, "Job", hook=True)
    hook_config = one(rendered, "ConfigMap", hook=True)
    for obj in (job, hook_config):
        assert obj["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    # the config the Job mounts exists before it (a lower hook weight)
    weight = "helm.sh/hook-weight"
    assert int(hook_config["metadata"]["annotations"][weight]) < int(
        job["metadata"]["annotations"][weight]
    )
    spec = job["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["args"][:2] == ["db", "upgrade"]
    assert spec["volumes"][0]["configMap"]["name"] == hook_config["metadata"]["name"]
    assert hook_config["data"] == one(rendered, "ConfigMap")["data"]
    assert job["spec"]["activeDeadlineSeconds"] > 0  # the Job has a deadline


def test_service_monitor_scrapes_the_service() -> None:
    objects = render(RENDERINGS["all-on"])
    monitor = one(objects, "ServiceMonitor")
    service = one(objects, "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= (
        service["metadata"]["labels"].items()
    )
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    assert endpoint["authorization"]["credentials"] == {
        "name": "llmrelay-secrets",
        "key": "metrics-key",
    }


def test_default_config_loads_with_the_secrets_set() -> None:
    text = one(render([]), "ConfigMap")["data"]["config.yaml"]
    env = {
        "LLMRELAY_GATEWAY_KEY": "sk-gateway-0123456789",
        "ANTHROPIC_API_KEY": "sk-ant-0123456789",
        "DATABASE_URL": "postgresql://llmrelay@postgres/llmrelay",
        "REDIS_URL": "redis://redis:6379/0",
    }
    settings = parse_settings(yaml.safe_load(text), env=env, source="config.yaml")
    assert settings.database_url() == env["DATABASE_URL"]
    with pytest.raises(ConfigError, match=r"environment variable \w+ is not set"):
        parse_settings(yaml.safe_load(text), env={}, source="config.yaml")


def test_chart_app_version_is_the_package_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == __version__
    deployment = one(render([]), "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"llmrelay:{__version__}"


def test_the_gateway_reads_the_mounted_config_and_writes_only_to_its_volumes(
    rendered: list[dict[str, Any]],
) -> None:
    pod = one(rendered, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    config_path = Path(container["args"][container["args"].index("--config") + 1])
    config_mount = mounts[str(config_path.parent)]
    assert config_mount["readOnly"] is True
    (config_volume,) = [v for v in pod["volumes"] if v["name"] == config_mount["name"]]
    assert config_volume["configMap"]["name"] == one(rendered, "ConfigMap")["metadata"]["name"]
    assert config_path.name in one(rendered, "ConfigMap")["data"]
    # the root filesystem is read-only: usage files must sit on a mounted volume
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    config = yaml.safe_load(one(rendered, "ConfigMap")["data"]["config.yaml"])
    usage_dir = str(Path(config["usage"]["path"]).parent)
    assert usage_dir in mounts and not mounts[usage_dir].get("readOnly", False)
    assert pod["securityContext"]["runAsNonRoot"] is True


def _render_fails(args: list[str]) -> str:
    out = subprocess.run(
        [helm(), "template", "rel", str(CHART), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode != 0, out.stdout
    return out.stderr


def test_a_zero_drain_timeout_shortens_the_grace_period() -> None:
    def grace(*args: str) -> int:
        pod = one(render(list(args)), "Deployment")["spec"]["template"]["spec"]
        return int(pod["terminationGracePeriodSeconds"])

    default = grace()
    zero = grace("--set", "config.server.drain_timeout_s=0")
    assert zero == default - 600  # 0 is a setting, not "unset" (the default 600)
    assert grace("--set", "config.server.shutdown_grace_s=0") == default - 5


def test_tls_in_config_makes_the_probes_https_and_the_migration_job_skips_it() -> None:
    objects = render(
        [
            *("--set", "config.server.tls.cert_file=/etc/llmrelay-tls/tls.crt"),
            *("--set", "config.server.tls.key_file=/etc/llmrelay-tls/tls.key"),
        ]
    )
    (container,) = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["scheme"] == "HTTPS"
    served = yaml.safe_load(one(objects, "ConfigMap")["data"]["config.yaml"])
    migrating = yaml.safe_load(one(objects, "ConfigMap", hook=True)["data"]["config.yaml"])
    assert served["server"]["tls"]["cert_file"] == "/etc/llmrelay-tls/tls.crt"
    assert "tls" not in migrating["server"]  # the Job mounts no certificate files
    del served["server"]["tls"]
    assert migrating == served
    # without TLS: plain HTTP
    (plain,) = one(render([]), "Deployment")["spec"]["template"]["spec"]["containers"]
    assert plain["readinessProbe"]["httpGet"]["scheme"] == "HTTP"


def test_workers_are_explicit_and_auto_needs_a_cpu_limit() -> None:
    config = yaml.safe_load(one(render([]), "ConfigMap")["data"]["config.yaml"])
    assert config["server"]["workers"] == 1
    err = _render_fails(["--set", "config.server.workers=auto"])
    assert "config.server.workers: auto needs resources.limits.cpu" in err
    objects = render(["--set", "config.server.workers=auto", "--set", "resources.limits.cpu=2"])
    (container,) = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["cpu"] == 2


def test_the_ingress_lets_through_the_bodies_the_gateway_accepts() -> None:
    objects = render(["-f", str(ALL_ON), "--set", "config.server.max_request_body_mb=64"])
    annotations = one(objects, "Ingress")["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-body-size"] == "64m"
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"  # values kept
    default = one(render(["-f", str(ALL_ON)]), "Ingress")["metadata"]["annotations"]
    assert default["nginx.ingress.kubernetes.io/proxy-body-size"] == "32m"
