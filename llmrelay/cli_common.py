"""What every command of the command line shares: loading the config (or exiting with its
errors) and showing a database URL without its password."""

from __future__ import annotations

import re
import sys

from .config import ConfigError, Settings, load_settings

__all__ = ["load_config", "safe_url"]


def load_config(path: str) -> Settings:
    """The validated settings of ``path``; config errors and missing provider libraries
    are printed and exit with status 2."""
    from .providers.registry import missing_dependencies

    try:
        settings = load_settings(path)
    except ConfigError as err:
        print(f"llmrelay: config error\n{err}", file=sys.stderr)
        raise SystemExit(2) from None
    missing = missing_dependencies({p.type for p in settings.providers.values()})
    if missing:
        print(
            "llmrelay: missing libraries\n" + "\n".join(f"{path}: {m}" for m in missing),
            file=sys.stderr,
        )
        raise SystemExit(2)
    return settings


def safe_url(url: str) -> str:
    """A URL without its password (in the user part or the query)."""
    url = re.sub(r"([?&](?:password|pass|pwd)=)[^&]*", r"\1***", url, flags=re.IGNORECASE)
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}@{host}" if user else f"{scheme}://{host}"
    return url
