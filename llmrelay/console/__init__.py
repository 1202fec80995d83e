"""The web console at ``/ui/``: server-rendered HTML over the admin API's data.

- ``data.py``: what the console shows, as JSON-ready dicts; the admin API serves the same
  dicts (``/admin/overview``, ``/admin/models``, ``/admin/budgets``).
- ``session.py``: the signed session cookie, CSRF tokens, the sign-in throttle.
- ``html.py``, ``charts.py``, ``conversation.py``, ``pages*.py``: rendering; every value
  from a user, a client or a provider goes through :func:`llmrelay.console.html.esc`.
- ``static/``: one stylesheet and one small script (a copy button), shipped as package data.

The HTTP side is :mod:`llmrelay.surfaces.console`. Design and choices: docs/console.md.
"""
