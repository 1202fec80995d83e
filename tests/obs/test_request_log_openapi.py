"""The admin API's OpenAPI document: a valid OpenAPI 3.1 document (checked by
openapi-spec-validator) that describes every admin route the app serves, and nothing else."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from llmrelay.app import build_app
from llmrelay.config import load_settings
from llmrelay.surfaces.admin_openapi import openapi_json
from tests.conftest import ALICE_KEY


def test_the_document_is_valid_openapi_3_1() -> None:
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(openapi_json())
    assert openapi_json()["openapi"] == "3.1.0"


def served_admin_routes(tmp: Path) -> set[tuple[str, str]]:
    config = {
        "auth": {"keys": [{"name": "alice", "key": ALICE_KEY}]},
        "providers": {"local": {"type": "mock", "models": {"echo": "echo"}}},
        "usage": {"path": str(tmp / "usage.db")},
        "admin": {"key": "sk-admin-0123456789abcdef0123"},
    }
    path = tmp / "llmrelay.yaml"
    path.write_text(yaml.safe_dump(config))
    app = build_app(load_settings(path))
    out = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        template = info.get("path") or info.get("formatter") or ""
        if template.startswith("/admin") and route.method != "HEAD":
            out.add((route.method.lower(), template))
    return out


def test_every_admin_route_is_documented_and_nothing_more(tmp_path: Path) -> None:
    doc = openapi_json()
    documented = {
        (method, path)
        for path, item in doc["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }
    assert documented == served_admin_routes(tmp_path)


def test_every_operation_names_its_errors_and_every_reference_resolves() -> None:
    doc = openapi_json()
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method == "parameters":
                continue
            assert "401" in op["responses"], (method, path)
            params = re.findall(r"{(\w+)}", path)
            named = {p["name"] for p in item.get("parameters", []) + op.get("parameters", [])}
            assert set(params) <= named, (method, path)
    text = repr(doc)
    for ref in re.findall(r"#/components/(\w+)/(\w+)", text):
        assert ref[1] in doc["components"][ref[0]], ref
