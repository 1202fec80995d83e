"""YAML + environment -> frozen, validated settings.

A config file is YAML. Strings may reference environment variables as ``${NAME}`` or
``${NAME:-default}``; an unset variable without a default is an error naming the variable
and the key it appears under. Every error is a :class:`ConfigError` whose message names the
file, the key path (``providers.anthropic.models``), what was expected and what was found,
and never contains a secret. The full reference is in ``docs/configuration.md``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

__all__ = [
    "AnthropicProviderConfig",
    "AuthConfig",
    "AzureOpenAIProviderConfig",
    "BedrockProviderConfig",
    "ConfigError",
    "GatewayKeyConfig",
    "LoggingConfig",
    "MockProviderConfig",
    "ModelConfig",
    "OpenAIProviderConfig",
    "ProviderConfig",
    "ServerConfig",
    "Settings",
    "TimeoutConfig",
    "UsageConfig",
    "VertexProviderConfig",
    "load_settings",
    "model_entry",
    "parse_settings",
]

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_SECRET_PARTS = ("key", "secret", "token", "password")
_EXPECTED = {
    "dict_type": "expected a mapping",
    "list_type": "expected a list",
    "string_type": "expected a string",
    "int_type": "expected an integer",
    "int_parsing": "expected an integer",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
}


class ConfigError(Exception):
    """A config file that cannot be used; ``str(err)`` is the one message to show."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(_Model):
    host: str = "127.0.0.1"
    port: int = Field(default=4000, ge=1, le=65535)
    #: Largest request body accepted, in MiB; larger bodies get 413 ``request_too_large``.
    max_request_body_mb: float = Field(default=32.0, gt=0)


class GatewayKeyConfig(_Model):
    name: str = Field(min_length=1)
    key: str = Field(min_length=8)


class AuthConfig(_Model):
    keys: list[GatewayKeyConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> AuthConfig:
        seen_names: set[str] = set()
        seen_keys: dict[str, str] = {}
        for k in self.keys:
            if k.name in seen_names:
                raise ValueError(f"duplicate key name {k.name!r}")
            seen_names.add(k.name)
            if k.key in seen_keys:
                raise ValueError(f"keys {seen_keys[k.key]!r} and {k.name!r} have the same secret")
            seen_keys[k.key] = k.name
        return self


class TimeoutConfig(_Model):
    #: Seconds to open a connection to the provider.
    connect_s: float = Field(default=10.0, gt=0)
    #: Seconds to wait for the provider's first byte and between any two reads after it.
    read_s: float = Field(default=600.0, gt=0)


class ModelConfig(_Model):
    """A model entry in its long form: ``{id: ..., max_output_tokens: ...}``."""

    #: The provider's model id (for Azure, the deployment name).
    id: str = Field(min_length=1)
    #: The most output tokens the model allows; a request asking for more is lowered to it
    #: (Claude Code asks for 32000, which e.g. gpt-4o, at 16384, would refuse).
    max_output_tokens: int | None = Field(default=None, ge=1)


#: Public model name -> the provider's model id, or the long form.
Models = dict[str, str | ModelConfig]


def _check_models(v: Models) -> Models:
    for public, entry in v.items():
        if "/" in public:
            raise ValueError(f"model name {public!r} must not contain '/'")
        if isinstance(entry, str) and not entry:
            raise ValueError(f"model {public!r} maps to an empty provider model id")
    return v


def model_entry(entry: str | ModelConfig) -> ModelConfig:
    """The long form of a ``models`` entry."""
    return ModelConfig(id=entry) if isinstance(entry, str) else entry


def _check_url(v: str) -> str:
    if not v.startswith(("http://", "https://")):
        raise ValueError("expected an http:// or https:// URL")
    return v.rstrip("/")


class AnthropicProviderConfig(_Model):
    """An Anthropic Messages API account (api.anthropic.com or any compatible server)."""

    type: Literal["anthropic"]
    base_url: str = "https://api.anthropic.com"
    api_key: str = Field(min_length=1)
    models: Models = Field(min_length=1)
    timeouts: TimeoutConfig = TimeoutConfig()

    _models = field_validator("models")(_check_models)
    _url = field_validator("base_url")(_check_url)


class MockProviderConfig(_Model):
    """The offline, deterministic provider that speaks the Anthropic Messages wire."""

    type: Literal["mock"]
    models: Models = Field(min_length=1)
    #: Seconds between streamed events (0 sends them as fast as possible).
    stream_delay_s: float = Field(default=0.0, ge=0)

    _models = field_validator("models")(_check_models)


class OpenAIProviderConfig(_Model):
    """Any OpenAI Chat Completions server: OpenAI, vLLM, Ollama, Groq, Together..."""

    type: Literal["openai"]
    #: Including the version path: ``https://api.openai.com/v1``, ``http://vllm:8000/v1``.
    base_url: str = "https://api.openai.com/v1"
    #: Sent as ``Authorization: Bearer``; servers without auth (a local vLLM) may omit it.
    api_key: str | None = None
    models: Models = Field(min_length=1)
    timeouts: TimeoutConfig = TimeoutConfig()

    _models = field_validator("models")(_check_models)
    _url = field_validator("base_url")(_check_url)


class AzureOpenAIProviderConfig(_Model):
    """Azure OpenAI: ``models`` map public names to deployment names."""

    type: Literal["azure_openai"]
    #: ``https://<resource>.openai.azure.com``.
    endpoint: str
    api_version: str = "2024-10-21"
    #: Sent as ``api-key``. Or give ``entra_token`` (sent as ``Authorization: Bearer``).
    api_key: str | None = None
    entra_token: str | None = None
    models: Models = Field(min_length=1)
    timeouts: TimeoutConfig = TimeoutConfig()

    _models = field_validator("models")(_check_models)
    _url = field_validator("endpoint")(_check_url)

    @model_validator(mode="after")
    def _one_credential(self) -> AzureOpenAIProviderConfig:
        if (self.api_key is None) == (self.entra_token is None):
            raise ValueError("give exactly one of api_key or entra_token")
        return self


class BedrockProviderConfig(_Model):
    """Claude on AWS Bedrock (InvokeModel), signed with SigV4 by botocore."""

    type: Literal["bedrock"]
    region: str = Field(min_length=1)
    #: ``https://bedrock-runtime.{region}.amazonaws.com`` unless set (VPC endpoints, tests).
    endpoint_url: str | None = None
    #: Explicit keys; otherwise the standard AWS chain (env, profile, web identity, role).
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    profile: str | None = None
    #: ``anthropic-beta`` values Bedrock accepts; others are dropped. None: the shipped list.
    betas: list[str] | None = None
    models: Models = Field(min_length=1)
    timeouts: TimeoutConfig = TimeoutConfig()

    _models = field_validator("models")(_check_models)

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, v: str | None) -> str | None:
        return None if v is None else _check_url(v)

    @model_validator(mode="after")
    def _keys_in_pairs(self) -> BedrockProviderConfig:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("give both access_key_id and secret_access_key, or neither")
        return self


class VertexProviderConfig(_Model):
    """Claude on Google Vertex AI (rawPredict), authorised by google-auth."""

    type: Literal["vertex"]
    project: str = Field(min_length=1)
    #: A region such as ``us-east5``, or ``global``.
    region: str = Field(min_length=1)
    #: A service-account JSON file; otherwise Application Default Credentials.
    credentials_file: str | None = None
    #: ``https://{region}-aiplatform.googleapis.com/v1`` unless set (tests, private endpoints).
    base_url: str | None = None
    betas: list[str] | None = None
    models: Models = Field(min_length=1)
    timeouts: TimeoutConfig = TimeoutConfig()

    _models = field_validator("models")(_check_models)

    @field_validator("base_url")
    @classmethod
    def _base(cls, v: str | None) -> str | None:
        return None if v is None else _check_url(v)


ProviderConfig = Annotated[
    AnthropicProviderConfig
    | MockProviderConfig
    | OpenAIProviderConfig
    | AzureOpenAIProviderConfig
    | BedrockProviderConfig
    | VertexProviderConfig,
    Field(discriminator="type"),
]
PROVIDER_TYPES = ("anthropic", "mock", "openai", "azure_openai", "bedrock", "vertex")


class UsageConfig(_Model):
    enabled: bool = True
    #: SQLite file for usage rows; relative paths are relative to the config file.
    path: str = "llmrelay-usage.db"
    #: Rows held in memory waiting for the writer; when full, new rows are dropped and counted.
    queue_size: int = Field(default=10_000, ge=1)
    #: Rows per write. Small batches keep each write's hold on the interpreter short.
    batch_size: int = Field(default=100, ge=1)
    #: Seconds between writes when rows are waiting.
    flush_interval_s: float = Field(default=1.0, gt=0)


class TranslationConfig(_Model):
    #: ``max_tokens`` sent to a provider that requires it (Anthropic) when the client's API
    #: does not (an OpenAI request without ``max_tokens`` / ``max_completion_tokens``).
    default_max_tokens: int = Field(default=8192, ge=1)


class LoggingConfig(_Model):
    level: Literal["debug", "info", "warning", "error"] = "warning"


class Settings(_Model):
    """The whole validated configuration; ``source`` is the file it came from."""

    server: ServerConfig = ServerConfig()
    auth: AuthConfig
    providers: dict[str, ProviderConfig] = Field(min_length=1)
    usage: UsageConfig = UsageConfig()
    translation: TranslationConfig = TranslationConfig()
    logging: LoggingConfig = LoggingConfig()
    source: str = "<memory>"

    @field_validator("providers")
    @classmethod
    def _account_names(cls, v: dict[str, Any]) -> dict[str, Any]:
        for name in v:
            if not name or "/" in name:
                raise ValueError(f"provider account name {name!r} must be non-empty without '/'")
        return v

    def usage_path(self) -> Path:
        p = Path(self.usage.path)
        if not p.is_absolute() and self.source != "<memory>":
            p = Path(self.source).parent / p
        return p


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (YAML would keep the last,
    silently dropping the first block)."""


def _mapping_without_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice in the same mapping", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates
)


def _expand_env(node: Any, path: str, env: Mapping[str, str], file: str) -> Any:
    if isinstance(node, str):

        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            value = env.get(name)
            if value is None:
                if default is None:
                    raise ConfigError(
                        f"{file}: {path or '<top>'}: environment variable {name} is not set "
                        f"(referenced as ${{{name}}})"
                    )
                return default
            return value

        return _ENV_REF.sub(sub, node)
    if isinstance(node, dict):
        return {
            k: _expand_env(v, f"{path}.{k}" if path else str(k), env, file) for k, v in node.items()
        }
    if isinstance(node, list):
        return [_expand_env(v, f"{path}[{i}]", env, file) for i, v in enumerate(node)]
    return node


def _describe(value: Any, secret: bool) -> str:
    if secret:
        return "a value (hidden)" if value is not None else "nothing"
    # Containers are described by shape only: their values may hold keys.
    if isinstance(value, dict):
        return f"a mapping with keys {', '.join(map(str, value)) or '(none)'}"
    if isinstance(value, list):
        return f"a list of {len(value)} item{'s' if len(value) != 1 else ''}"
    if value is None:
        return "nothing"
    kind = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{kind} {text}"


def _loc_path(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    items = list(loc)
    # Drop the discriminator tag pydantic inserts after a provider account name.
    if len(items) > 2 and items[0] == "providers" and items[2] in PROVIDER_TYPES:
        del items[2]
    for item in items:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts)


def _format_validation(file: str, err: ValidationError) -> str:
    lines = []
    for e in err.errors(include_url=False):
        path = _loc_path(e["loc"])
        secret = any(s in path.rsplit(".", 1)[-1].lower() for s in _SECRET_PARTS)
        msg = _EXPECTED.get(e["type"]) or e["msg"].removeprefix("Value error, ")
        if e["type"] == "union_tag_not_found":
            lines.append(
                f"{file}: {path}.type: required key is missing (one of {', '.join(PROVIDER_TYPES)})"
            )
        elif e["type"] == "union_tag_invalid":
            found = _describe(e.get("input", {}).get("type"), False)
            lines.append(
                f"{file}: {path}.type: expected one of {', '.join(PROVIDER_TYPES)}; found {found}"
            )
        elif e["type"] == "missing":
            lines.append(f"{file}: {path}: required key is missing")
        elif e["type"] == "extra_forbidden":
            lines.append(
                f"{file}: {path}: unknown key (check its spelling in docs/configuration.md)"
            )
        else:
            found = _describe(e.get("input"), secret)
            lines.append(f"{file}: {path}: {msg}; found {found}")
    return "\n".join(lines)


def parse_settings(
    data: Any, *, source: str = "<memory>", env: Mapping[str, str] | None = None
) -> Settings:
    """Validate an already-loaded YAML document.

    Raises:
        ConfigError: naming ``source``, the key path, what was expected and what was found.
    """
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: expected a YAML mapping at the top; found {_describe(data, False)}"
        )
    expanded = _expand_env(data, "", os.environ if env is None else env, source)
    expanded["source"] = source
    try:
        return Settings.model_validate(expanded)
    except ValidationError as err:
        raise ConfigError(_format_validation(source, err)) from None


def load_settings(path: str | Path, env: Mapping[str, str] | None = None) -> Settings:
    """Read, expand and validate a YAML config file.

    Raises:
        ConfigError: the file is missing, not YAML, or not a valid config.
    """
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{file}: cannot read config file: {err.strerror}") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as err:
        where = ""
        mark = getattr(err, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise ConfigError(f"{file}: not valid YAML{where}: {problem}") from None
    return parse_settings(data, source=file, env=env)
