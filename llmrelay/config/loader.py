"""Reading a config file: YAML (duplicate keys refused), ``${VAR}`` expansion, validation,
and error messages.

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
from typing import Any

import yaml
from pydantic import ValidationError

from ._base import ConfigError
from .providers import PROVIDER_TYPES
from .settings import Settings

__all__ = ["load_settings", "parse_settings"]

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


def _is_secret(name: str) -> bool:
    """``key``, ``api_key``, ``session_token``...: but not ``key_refresh_s``."""
    name = name.lower().split("[", 1)[0]
    return name in _SECRET_PARTS or name.endswith(tuple("_" + s for s in _SECRET_PARTS))


_URL_PASSWORD = re.compile(r"(://[^/@\s:]*):[^@/\s]*@")
_QUERY_PASSWORD = re.compile(r"([?&](?:password|pass|pwd)=)[^&\s']*", re.IGNORECASE)


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
    if isinstance(value, str):
        text = _URL_PASSWORD.sub(r"\1:***@", text)  # a password inside a URL
        text = _QUERY_PASSWORD.sub(r"\1***", text)
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
        secret = _is_secret(path.rsplit(".", 1)[-1])
        msg = _EXPECTED.get(e["type"]) or e["msg"].removeprefix("Value error, ")
        if not path and e["type"] == "value_error":
            # Cross-checks of the whole file (config/routing.check_routing): each line
            # already starts with its key path.
            lines += [f"{file}: {line}" for line in msg.splitlines()]
        elif e["type"] == "literal_error":
            expected = e.get("ctx", {}).get("expected", "")
            found = _describe(e.get("input"), secret)
            lines.append(f"{file}: {path}: expected {expected}; found {found}")
        elif e["type"] == "union_tag_not_found":
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
