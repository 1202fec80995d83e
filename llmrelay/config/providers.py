"""Provider account settings: one model per provider ``type``, and the model map."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from ..providers.headers import never_forwarded
from ._base import ConfigModel as _Model
from .governance import LimitsConfig

__all__ = [
    "PROVIDER_TYPES",
    "AnthropicProviderConfig",
    "AzureOpenAIProviderConfig",
    "BedrockProviderConfig",
    "EgressConfig",
    "MockProviderConfig",
    "ModelConfig",
    "Models",
    "OpenAIProviderConfig",
    "ProviderConfig",
    "TimeoutConfig",
    "VertexProviderConfig",
    "model_entry",
]


class TimeoutConfig(_Model):
    #: Seconds to open a connection to the provider.
    connect_s: float = Field(default=10.0, gt=0)
    #: Seconds to wait for the provider's first byte and between any two reads after it.
    read_s: float = Field(default=600.0, gt=0)
    #: Seconds a whole call to the provider may take, body or stream included (504 or a
    #: stream's error event when it runs out); ``read_s`` only bounds the gap between reads.
    total_s: float = Field(default=600.0, gt=0)


class ModelConfig(_Model):
    """A model entry in its long form: ``{id: ..., max_output_tokens: ...}``."""

    #: The provider's model id (for Azure, the deployment name).
    id: str = Field(min_length=1)
    #: The most output tokens the model allows; a request asking for more is lowered to it
    #: (Claude Code asks for 32000, which e.g. gpt-4o, at 16384, would refuse).
    max_output_tokens: int | None = Field(default=None, ge=1)
    #: Rate limits on this model across all callers (a provider quota shared by everyone).
    limits: LimitsConfig = LimitsConfig()


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


_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz")


def _header_names(v: list[str]) -> list[str]:
    out = []
    for name in v:
        low = name.strip().lower()
        if not low or not set(low) <= _TOKEN:
            raise ValueError(f"{name!r} is not an HTTP header name")
        out.append(low)
    return out


class EgressConfig(_Model):
    """How the gateway reaches this provider: a proxy and the CAs it trusts
    (``llmrelay/providers/http.py``, docs/configuration.md "Outbound proxies and TLS")."""

    #: ``http://[user:pass@]host:port`` of a proxy for this provider's calls (HTTPS goes
    #: through it with CONNECT). Unset: ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY``
    #: from the environment decide, as curl and the official SDKs do.
    proxy: str | None = None
    #: A PEM file of CA certificates this provider's TLS certificate is checked against
    #: instead of the system's (or ``SSL_CERT_FILE``'s); relative to the working directory.
    ca_file: str | None = None

    @field_validator("proxy")
    @classmethod
    def _proxy_url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("expected an http:// proxy URL such as http://proxy.internal:3128")
        return v

    def upstream_url(self) -> str:
        """The origin this provider's calls go to (which proxy applies depends on it)."""
        raise NotImplementedError  # each provider type says

    @field_validator("ca_file")
    @classmethod
    def _readable(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not Path(v).is_file():
            raise ValueError(f"CA file {v!r} does not exist or is not a file")
        try:
            ssl.create_default_context(cafile=v)  # reads only this file
        except (ssl.SSLError, OSError) as err:
            raise ValueError(
                f"CA file {v!r} is not a PEM bundle of CA certificates ({err.__class__.__name__})"
            ) from None
        return v


class _HeaderRules(EgressConfig):
    """Which client headers go to this provider (``llmrelay/providers/headers.py``), and
    how it is reached."""

    #: Client headers dropped by default (``x-forwarded-for``, ``cookie``,
    #: ``openai-organization``, ``x-amz-*``...) that go to this provider all the same.
    #: Bedrock and Vertex forward only a few headers; these are added to them.
    forward_headers: list[str] = Field(default_factory=list)
    #: More client headers never sent to this provider.
    drop_headers: list[str] = Field(default_factory=list)

    @field_validator("forward_headers")
    @classmethod
    def _forwardable(cls, v: list[str]) -> list[str]:
        names = _header_names(v)
        never = [n for n in names if never_forwarded(n)]
        if never:
            raise ValueError(
                f"{', '.join(never)}: never forwarded (the gateway's key, or a header "
                "the provider client sets itself)"
            )
        return names

    @field_validator("drop_headers")
    @classmethod
    def _droppable(cls, v: list[str]) -> list[str]:
        return _header_names(v)


class AnthropicProviderConfig(_HeaderRules):
    """An Anthropic Messages API account (api.anthropic.com or any compatible server)."""

    type: Literal["anthropic"]
    base_url: str = "https://api.anthropic.com"
    #: ``api_key``: the gateway sends ``api_key`` as ``x-api-key``. ``passthrough``
    #: (subscription passthrough, docs/passthrough.md): no ``api_key``; the caller's own
    #: ``Authorization: Bearer`` (a Claude subscription's OAuth token) goes to Anthropic,
    #: and the gateway key comes in ``x-llmrelay-key``.
    auth: Literal["api_key", "passthrough"] = "api_key"
    api_key: str | None = Field(default=None, min_length=1)
    #: With ``auth: passthrough``: count these calls' list-price cost against USD budgets
    #: (default: priced for reporting only, the seat pays).
    budget_subscription: bool = False
    models: Models = Field(min_length=1)
    timeouts: TimeoutConfig = TimeoutConfig()
    #: Send the attempt's W3C ``traceparent`` upstream when tracing is on (the provider's
    #: own traces then continue the gateway's).
    trace_propagation: bool = True

    _models = field_validator("models")(_check_models)
    _url = field_validator("base_url")(_check_url)

    def upstream_url(self) -> str:
        return self.base_url

    @model_validator(mode="after")
    def _credential(self) -> AnthropicProviderConfig:
        if self.auth == "api_key" and self.api_key is None:
            raise ValueError("api_key is required (or auth: passthrough)")
        if self.auth == "passthrough" and self.api_key is not None:
            raise ValueError("auth: passthrough sends the caller's credential: remove api_key")
        return self


class MockProviderConfig(_Model):
    """The offline, deterministic provider that speaks the Anthropic Messages wire."""

    type: Literal["mock"]
    models: Models = Field(min_length=1)
    #: Seconds between streamed events (0 sends them as fast as possible).
    stream_delay_s: float = Field(default=0.0, ge=0)
    #: Answer every Messages call with this error status and Anthropic's error body, to try
    #: fallbacks offline (529: ``overloaded_error``). None: answer normally.
    error_status: int | None = Field(default=None, ge=400, le=599)
    #: With ``error_status``: a stream gets HTTP 200 and then an ``error`` event as its first
    #: event, the way Anthropic reports ``overloaded_error`` on a stream.
    error_in_stream: bool = False

    _models = field_validator("models")(_check_models)


class OpenAIProviderConfig(_HeaderRules):
    """Any OpenAI Chat Completions server: OpenAI, vLLM, Ollama, Groq, Together..."""

    type: Literal["openai"]
    #: Including the version path: ``https://api.openai.com/v1``, ``http://vllm:8000/v1``.
    base_url: str = "https://api.openai.com/v1"
    #: Sent as ``Authorization: Bearer``; servers without auth (a local vLLM) may omit it.
    api_key: str | None = None
    models: Models = Field(min_length=1)
    timeouts: TimeoutConfig = TimeoutConfig()
    #: Send the attempt's W3C ``traceparent`` upstream when tracing is on (the provider's
    #: own traces then continue the gateway's).
    trace_propagation: bool = True

    _models = field_validator("models")(_check_models)
    _url = field_validator("base_url")(_check_url)

    def upstream_url(self) -> str:
        return self.base_url


class AzureOpenAIProviderConfig(_HeaderRules):
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
    #: Send the attempt's W3C ``traceparent`` upstream when tracing is on (the provider's
    #: own traces then continue the gateway's).
    trace_propagation: bool = True

    _models = field_validator("models")(_check_models)
    _url = field_validator("endpoint")(_check_url)

    def upstream_url(self) -> str:
        return self.endpoint

    @model_validator(mode="after")
    def _one_credential(self) -> AzureOpenAIProviderConfig:
        if (self.api_key is None) == (self.entra_token is None):
            raise ValueError("give exactly one of api_key or entra_token")
        return self


class BedrockProviderConfig(_HeaderRules):
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

    def upstream_url(self) -> str:
        return self.endpoint_url or f"https://bedrock-runtime.{self.region}.amazonaws.com"

    @model_validator(mode="after")
    def _keys_in_pairs(self) -> BedrockProviderConfig:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("give both access_key_id and secret_access_key, or neither")
        return self


class VertexProviderConfig(_HeaderRules):
    """Claude on Google Vertex AI (rawPredict), authorised by google-auth."""

    type: Literal["vertex"]
    project: str = Field(min_length=1)
    #: A region such as ``us-east5``, or ``global``.
    region: str = Field(min_length=1)
    #: Where ``count_tokens`` goes. Vertex serves Claude's count-tokens in a few regions
    #: only (``us-east5``, ``europe-west1``, ``asia-southeast1`` as of 2026-03; never at
    #: ``locations/global``: Google's "Count tokens for Claude" page, LiteLLM PRs #20348
    #: and #23907). Unset: ``region``, or ``us-east5`` when ``region`` is ``global``.
    count_tokens_region: str | None = Field(default=None, min_length=1)
    #: A service-account JSON file; otherwise Application Default Credentials.
    credentials_file: str | None = None
    #: ``https://{region}-aiplatform.googleapis.com/v1`` unless set (tests, private endpoints).
    base_url: str | None = None
    betas: list[str] | None = None
    models: Models = Field(min_length=1)
    timeouts: TimeoutConfig = TimeoutConfig()

    _models = field_validator("models")(_check_models)

    def upstream_url(self) -> str:
        if self.base_url is not None:
            return self.base_url
        host = "aiplatform.googleapis.com"
        return f"https://{host if self.region == 'global' else f'{self.region}-{host}'}/v1"

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
