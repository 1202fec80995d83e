"""Which model names the gateway routes: what a virtual key's ``models`` may list.

A name is routable when it is an ``account/model`` of ``providers:``, a virtual model of
``models:``, or a name some routing rule's ``match.model`` covers (a rule without a model
criterion covers every name). Read from the settings in force, so a reload changes it.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from ..config import Settings

__all__ = ["is_routable"]


def is_routable(settings: Settings, name: str) -> bool:
    """Whether a call asking for ``name`` can be routed by ``settings`` (see the module)."""
    if name in settings.models:
        return True
    account, sep, model = name.partition("/")
    if sep and account in settings.providers and model in settings.providers[account].models:
        return True
    for rule in settings.routing.rules:
        pattern = rule.match.model
        if pattern is None:
            return True
        patterns = pattern if isinstance(pattern, list) else [pattern]
        if any(fnmatchcase(name, p) for p in patterns):
            return True
    return False
