"""Config errors name the file, the key path, what was expected and what was found."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from llmrelay.config import ConfigError, load_settings

GOOD = """
auth:
  keys:
    - name: alice
      key: ${ALICE_KEY}
providers:
  anthropic:
    type: anthropic
    base_url: https://api.anthropic.com
    api_key: ${ANTHROPIC_API_KEY}
    models:
      claude-3-5: claude-3-5-sonnet-20241022
  local:
    type: mock
    models: {echo: echo}
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "llmrelay.yaml"
    p.write_text(text)
    return p


def test_issue_shape_loads_with_env(tmp_path: Path) -> None:
    env = {"ALICE_KEY": "sk-alice-12345678", "ANTHROPIC_API_KEY": "sk-ant-x"}
    s = load_settings(write(tmp_path, GOOD), env=env)
    assert s.auth.keys[0].key == "sk-alice-12345678"
    assert s.providers["anthropic"].models == {"claude-3-5": "claude-3-5-sonnet-20241022"}


def test_unset_env_var_is_named_with_its_key(tmp_path: Path) -> None:
    p = write(tmp_path, GOOD)
    with pytest.raises(ConfigError) as e:
        load_settings(p, env={"ALICE_KEY": "sk-alice-12345678"})
    assert str(e.value) == (
        f"{p}: providers.anthropic.api_key: environment variable ANTHROPIC_API_KEY is not set "
        "(referenced as ${ANTHROPIC_API_KEY})"
    )


def test_env_default_is_used(tmp_path: Path) -> None:
    text = GOOD.replace("${ANTHROPIC_API_KEY}", "${ANTHROPIC_API_KEY:-sk-default}")
    s = load_settings(write(tmp_path, text), env={"ALICE_KEY": "sk-alice-12345678"})
    assert s.providers["anthropic"].api_key == "sk-default"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("models:\n      claude-3-5: claude-3-5-sonnet-20241022", "models: [claude-3-5]"),
            "providers.anthropic.models: expected a mapping; found a list of 1 item",
        ),
        (
            ("type: mock", "type: mocky"),
            "providers.local.type: expected one of anthropic, mock, openai, azure_openai, bedrock, "
            "vertex; "
            "found a string 'mocky'",
        ),
        (
            ("base_url: https://api.anthropic.com", "base_url: api.anthropic.com"),
            "providers.anthropic.base_url: expected an http:// or https:// URL",
        ),
        (
            ("    models: {echo: echo}", "    models: {echo: echo}\n    colour: blue"),
            "providers.local.colour: unknown key",
        ),
        (("- name: alice", "- nam: alice"), "auth.keys[0].name: required key is missing"),
    ],
)
def test_bad_config_names_file_key_and_expectation(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    p = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(ConfigError) as e:
        load_settings(p, env={"ALICE_KEY": "sk-alice-12345678", "ANTHROPIC_API_KEY": "k"})
    assert str(e.value).startswith(f"{p}: ")
    assert message in str(e.value)


def test_secret_values_never_appear_in_errors(tmp_path: Path) -> None:
    p = write(tmp_path, GOOD.replace("key: ${ALICE_KEY}", "key: [sk-secret-value-xyz]"))
    with pytest.raises(ConfigError) as e:
        load_settings(p, env={"ANTHROPIC_API_KEY": "k"})
    assert "auth.keys[0].key" in str(e.value)
    assert "sk-secret-value-xyz" not in str(e.value)


def test_not_yaml_names_line(tmp_path: Path) -> None:
    p = write(tmp_path, "auth: [\n")
    with pytest.raises(ConfigError) as e:
        load_settings(p)
    assert str(e.value).startswith(f"{p}: not valid YAML at line")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path / "nope.yaml")


def test_check_config_cli(tmp_path: Path) -> None:
    p = write(tmp_path, GOOD)
    env = {"ALICE_KEY": "sk-alice-12345678", "ANTHROPIC_API_KEY": "sk-ant-secret", "PATH": ""}
    ok = subprocess.run(
        [sys.executable, "-m", "llmrelay", "check-config", str(p)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert ok.returncode == 0, ok.stderr
    assert "anthropic/claude-3-5 -> anthropic:claude-3-5-sonnet-20241022" in ok.stdout
    assert "local/echo -> mock:echo" in ok.stdout
    assert "sk-ant-secret" not in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "llmrelay", "check-config", str(p)],
        capture_output=True,
        text=True,
        env={"PATH": ""},
    )
    assert bad.returncode == 2
    assert f"{p}: auth.keys[0].key: environment variable ALICE_KEY is not set" in bad.stderr


def test_serve_with_bad_config_fails_at_start(tmp_path: Path) -> None:
    p = write(tmp_path, GOOD.replace("type: mock", "type: nope"))
    r = subprocess.run(
        [sys.executable, "-m", "llmrelay", "serve", "--config", str(p)],
        capture_output=True,
        text=True,
        timeout=30,
        env={"ALICE_KEY": "sk-alice-12345678", "ANTHROPIC_API_KEY": "k", "PATH": ""},
    )
    assert r.returncode == 2
    assert "providers.local.type: expected one of anthropic, mock, openai" in r.stderr


def test_long_form_model_entry(tmp_path: Path) -> None:
    text = GOOD.replace(
        "claude-3-5: claude-3-5-sonnet-20241022",
        "claude-3-5: claude-3-5-sonnet-20241022\n"
        "      capped: {id: claude-x, max_output_tokens: 0}",
    )
    env = {"ALICE_KEY": "sk-alice-12345678", "ANTHROPIC_API_KEY": "k"}
    with pytest.raises(ConfigError) as e:
        load_settings(write(tmp_path, text), env=env)
    assert "providers.anthropic.models.capped" in str(e.value)
    good = load_settings(
        write(tmp_path, text.replace("max_output_tokens: 0", "max_output_tokens: 4096")), env=env
    )
    entry = good.providers["anthropic"].models["capped"]
    assert not isinstance(entry, str) and entry.max_output_tokens == 4096


def test_errors_on_whole_mappings_never_show_their_values(tmp_path: Path) -> None:
    text = """
auth:
  keys:
    - {name: a, key: sk-GATEWAYSECRET1}
    - {name: a, key: sk-GATEWAYSECRET2}
providers:
  az: {type: azure_openai, endpoint: "https://x", api_key: AZSECRET123,
       entra_token: ENTRATOKEN456, models: {g: d}}
"""
    with pytest.raises(ConfigError) as e:
        load_settings(write(tmp_path, text))
    message = str(e.value)
    assert "duplicate key name 'a'" in message
    assert "give exactly one of api_key or entra_token" in message
    for secret in ("sk-GATEWAYSECRET1", "sk-GATEWAYSECRET2", "AZSECRET123", "ENTRATOKEN456"):
        assert secret not in message


def test_a_key_given_twice_is_an_error(tmp_path: Path) -> None:
    # Pasting a second providers: block would otherwise silently replace the first.
    text = GOOD + "providers:\n  other: {type: mock, models: {e: e}}\n"
    with pytest.raises(ConfigError) as e:
        load_settings(
            write(tmp_path, text), env={"ALICE_KEY": "sk-alice-12345678", "ANTHROPIC_API_KEY": "k"}
        )
    assert "key 'providers' appears twice" in str(e.value)


def test_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        p = write(tmp_path, GOOD)
        r = subprocess.run(
            [sys.executable, "-m", "llmrelay", "serve", "--config", str(p), "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
            env={"ALICE_KEY": "sk-alice-12345678", "ANTHROPIC_API_KEY": "k", "PATH": ""},
        )
    assert r.returncode == 1
    assert f"llmrelay: cannot listen on 127.0.0.1:{port}" in r.stderr
    assert "Traceback" not in r.stderr
