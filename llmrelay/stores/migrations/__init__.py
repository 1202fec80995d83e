"""Alembic migrations for llmrelay's SQL stores (SQLite and PostgreSQL).

Run them with :func:`llmrelay.stores.schema.upgrade` or ``llmrelay db upgrade``; there is
no ``alembic.ini``: :mod:`llmrelay.stores.schema` builds Alembic's config in code and hands
``env.py`` an open connection ("Sharing a Connection across one or more programmatic
migration commands" in the Alembic cookbook). Each revision writes its DDL as plain SQL per
dialect and imports nothing from the application, so it keeps meaning what it meant.
"""
