"""The base of every config model, and the config error."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["ConfigError", "ConfigModel"]


class ConfigError(Exception):
    """A config file that cannot be used; ``str(err)`` is the one message to show."""


class ConfigModel(BaseModel):
    """Frozen, and unknown keys are errors (a misspelt key must not pass silently)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
