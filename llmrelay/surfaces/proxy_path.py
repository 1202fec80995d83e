"""Where a native passthrough request goes: the account and the path under its base URL,
refusing every form that could leave the account.

The path is read from the request target *as sent* (``request.raw_path``), before any
decoding or normalisation, and goes upstream in that same encoded form, appended to the
account's configured base URL: the upstream host, port and base path are the config's,
always. Refused with 400 (nothing reaches a provider):

* an absolute-form request target (``GET http://other.host/proxy/...``): a host override;
* ``.`` and ``..`` segments, also percent-encoded (``%2e``) or with a path parameter
  (``..;x``), and empty segments (``//``);
* encoded slashes and backslashes (``%2f``, ``%5c``), double encoding (``%25``), a raw
  backslash, control characters and spaces;
* a path longer than :data:`MAX_PATH_CHARS`.

An encoded slash is refused even where an API allows one (a Bedrock model ARN in the path):
name the model by its id or inference-profile id instead.
"""

from __future__ import annotations

from ..errors import InvalidRequestError

__all__ = ["MAX_PATH_CHARS", "PROXY_PREFIX", "proxied_path", "split_proxy_target"]

#: The passthrough's own prefix: ``/proxy/{account}/{path}``.
PROXY_PREFIX = "/proxy/"
#: Longest request target accepted, in characters (path and query).
MAX_PATH_CHARS = 4096
_ENCODED_REFUSED = ("%2f", "%5c", "%2e", "%25", "%00")


def _refuse(why: str) -> InvalidRequestError:
    return InvalidRequestError(f"passthrough path refused: {why}")


def _origin_form(raw_target: str) -> None:
    if not raw_target.startswith("/"):
        raise _refuse("an absolute URL as the request target (the account sets the host)")


def proxied_path(raw_target: str, prefix: str) -> tuple[str, str]:
    """``raw_target`` (path and query, as sent) less ``prefix``: ``(path, query)``, the path
    without its leading ``/``.

    Raises:
        InvalidRequestError: any form in the module docstring (400).
    """
    _origin_form(raw_target)
    if len(raw_target) > MAX_PATH_CHARS:
        raise _refuse(f"longer than {MAX_PATH_CHARS} characters")
    path, _, query = raw_target.partition("?")
    if not path.startswith(prefix):
        raise _refuse(f"expected {prefix}...")
    rest = path[len(prefix) :]
    # Each check looks for the one character its forms share first (every call passes
    # them; the generator walks cost more than the rest of the check).
    if "%" in rest:
        low = rest.lower()
        if any(code in low for code in _ENCODED_REFUSED):
            raise _refuse("encoded '/', '\\', '.' or '%' in the path")
    # A tab or any other control character is not printable.
    if "\\" in rest or " " in rest or not rest.isprintable() or not rest.isascii():
        raise _refuse("a backslash, space or control character in the path")
    if "\x7f" in query or not query.isprintable():
        raise _refuse("a control character in the query")
    # "..;x" is ".." to servers that strip path parameters (Tomcat, Spring).
    if "." in rest and any(s.partition(";")[0] in (".", "..") for s in rest.split("/")):
        raise _refuse("'.' or '..' segments")
    # An empty segment: a leading "/" of the rest, or "//" anywhere.
    if rest.startswith("/") or "//" in path:
        raise _refuse("an empty segment ('//')")
    return rest, query


def split_proxy_target(raw_target: str) -> tuple[str, str, str]:
    """``/proxy/{account}/{path}?{query}`` -> ``(account, path, query)``.

    Raises:
        InvalidRequestError: no account, or a path :func:`proxied_path` refuses (400).
    """
    _origin_form(raw_target)
    if not raw_target.startswith(PROXY_PREFIX):
        raise _refuse(f"expected {PROXY_PREFIX}{{account}}/{{path}}")
    account, sep, _ = raw_target[len(PROXY_PREFIX) :].partition("/")
    account = account.partition("?")[0]
    if not account or not sep:
        raise _refuse(f"expected {PROXY_PREFIX}{{account}}/{{path}}")
    if account in (".", "..") or "%" in account:
        raise _refuse("'.', '..' or an encoded character as the account")
    path, query = proxied_path(raw_target, f"{PROXY_PREFIX}{account}/")
    return account, path, query
