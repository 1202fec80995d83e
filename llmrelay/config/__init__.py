"""YAML + environment -> frozen, validated settings.

A config file is YAML. Strings may reference environment variables as ``${NAME}`` or
``${NAME:-default}``; an unset variable without a default is an error naming the variable
and the key it appears under. Every error is a :class:`ConfigError` whose message names the
file, the key path (``providers.anthropic.models``), what was expected and what was found,
and never contains a secret. The full reference is in ``docs/configuration.md``.
"""

from ._base import ConfigError
from .governance import (
    AdminConfig,
    BudgetConfig,
    GovernanceConfig,
    LimitsConfig,
    PriceConfig,
    RedisConfig,
    TeamConfig,
)
from .loader import load_settings, parse_settings
from .observability import (
    MetricsConfig,
    ObservabilityConfig,
    RequestLogConfig,
    TracingConfig,
)
from .providers import (
    PROVIDER_TYPES,
    AnthropicProviderConfig,
    AzureOpenAIProviderConfig,
    BedrockProviderConfig,
    MockProviderConfig,
    ModelConfig,
    Models,
    OpenAIProviderConfig,
    ProviderConfig,
    TimeoutConfig,
    VertexProviderConfig,
    model_entry,
)
from .settings import (
    AuthConfig,
    GatewayKeyConfig,
    LoggingConfig,
    OverridesConfig,
    ServerConfig,
    Settings,
    TranslationConfig,
    UsageConfig,
)

__all__ = [
    "PROVIDER_TYPES",
    "AdminConfig",
    "AnthropicProviderConfig",
    "AuthConfig",
    "AzureOpenAIProviderConfig",
    "BedrockProviderConfig",
    "BudgetConfig",
    "ConfigError",
    "GatewayKeyConfig",
    "GovernanceConfig",
    "LimitsConfig",
    "LoggingConfig",
    "MetricsConfig",
    "MockProviderConfig",
    "ModelConfig",
    "Models",
    "ObservabilityConfig",
    "OpenAIProviderConfig",
    "OverridesConfig",
    "PriceConfig",
    "ProviderConfig",
    "RedisConfig",
    "RequestLogConfig",
    "ServerConfig",
    "Settings",
    "TeamConfig",
    "TimeoutConfig",
    "TracingConfig",
    "TranslationConfig",
    "UsageConfig",
    "VertexProviderConfig",
    "load_settings",
    "model_entry",
    "parse_settings",
]
