"""PostgreSQL connections for the stores: a small pool whose every wait is bounded.

A store must fail fast when PostgreSQL is down, so the usage writer can retry and the key
cache can keep serving. With ``timeout_s`` (default 5 s):

- taking a connection from the pool waits at most ``timeout_s``, then raises
  ``psycopg_pool.PoolTimeout`` (a ``psycopg.OperationalError``);
- each connection attempt gives up after libpq's ``connect_timeout`` (``timeout_s``, at
  least 2 s, libpq's minimum);
- a connection whose peer vanished without a reset (a dropped network rather than a stopped
  server) is found dead by TCP keepalives (5 s idle, 3 probes 2 s apart) or by
  ``tcp_user_timeout`` (10 s of unacknowledged data), instead of the kernel's two hours;
- every connection is tested when taken from the pool (:func:`check_connection`, one
  empty query, like ``ConnectionPool.check_connection``), so connections broken by a server
  restart are replaced rather than handed out. Unlike psycopg_pool's check, the answer is
  awaited for ``timeout_s`` at most, then the connection is closed and the check raises: a
  server that keeps the connection up and acknowledged but never answers (a blackholed
  proxy, a hung PgBouncer) is not caught by keepalives or ``tcp_user_timeout``, and the
  check would otherwise wait forever (and a shutdown with it);
- a failed (re)connection is retried with the pool's backoff for ``reconnect_timeout``
  (``timeout_s``) and then abandoned; the next request starts a fresh attempt, so the store
  works again within about ``timeout_s`` of the server's return instead of after a backoff
  that could have grown to minutes.

Follows the psycopg_pool documentation ("Connection pools": pool behaviour, connection
checks, ``reconnect_timeout``) and libpq's "Parameter Key Words". Settings already in the
URL win over these defaults.

A query on a connection that passed the check is not bounded on the client (psycopg has no
client-side query timeout): a server that stalls in the middle of one holds that call
until it answers or the connection drops. ``llmrelay serve`` still exits then
(:data:`llmrelay.process.EXECUTOR_SHUTDOWN_TIMEOUT_S`).
"""

from __future__ import annotations

import selectors
import time
from functools import partial
from typing import Any

from psycopg import Connection, OperationalError, pq
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool

__all__ = ["DEFAULT_TIMEOUT_S", "Pool", "check_connection", "connect_kwargs", "open_pool"]

Pool = ConnectionPool[Connection[TupleRow]]

#: Seconds an operation may wait for PostgreSQL before it raises.
DEFAULT_TIMEOUT_S = 5.0


def connect_kwargs(conninfo: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> dict[str, Any]:
    """libpq parameters that bound waits, minus those ``conninfo`` already sets."""
    given = conninfo_to_dict(conninfo)
    defaults: dict[str, Any] = {
        "connect_timeout": max(2, round(timeout_s)),
        "keepalives": 1,
        "keepalives_idle": 5,
        "keepalives_interval": 2,
        "keepalives_count": 3,
        "tcp_user_timeout": 10_000,
        "application_name": "llmrelay",
    }
    return {k: v for k, v in defaults.items() if k not in given}


def open_pool(conninfo: str, *, timeout_s: float = DEFAULT_TIMEOUT_S, max_size: int = 4) -> Pool:
    """A started pool of 1 to ``max_size`` autocommit connections. It does not wait for the
    first connection: a server that is down makes operations raise, not this call."""
    kwargs = connect_kwargs(conninfo, timeout_s)
    kwargs["autocommit"] = True
    return ConnectionPool(
        conninfo,
        kwargs=kwargs,
        min_size=1,
        max_size=max_size,
        open=True,
        check=partial(check_connection, timeout_s=timeout_s),
        timeout=timeout_s,
        reconnect_timeout=timeout_s,
        name="llmrelay",
    )


def check_connection(conn: Connection[TupleRow], timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """Run an empty query on ``conn``, waiting for the answer at most ``timeout_s``.

    Raises:
        psycopg.OperationalError: the connection is not idle, broken, or silent for
            ``timeout_s`` (then it is closed: it cannot be used again mid-query).
    """
    pgconn = conn.pgconn
    if pgconn.status != pq.ConnStatus.OK:
        raise OperationalError("connection is closed or broken")
    if pgconn.transaction_status != pq.TransactionStatus.IDLE:
        raise OperationalError("connection is not idle")
    deadline = time.monotonic() + timeout_s
    try:
        # psycopg's connections are non-blocking (libpq's nonblocking mode): sending may
        # need flushing, and reading never blocks.
        pgconn.send_query(b"")
        with selectors.DefaultSelector() as sel:
            sel.register(pgconn.socket, selectors.EVENT_WRITE)
            while pgconn.flush():
                _wait(sel, deadline)
            sel.modify(pgconn.socket, selectors.EVENT_READ)
            while True:
                pgconn.consume_input()
                if not pgconn.is_busy():
                    break
                _wait(sel, deadline)
        status = None
        while (res := pgconn.get_result()) is not None:
            status = status or res.status
    except OperationalError:  # what libpq's failures raise in psycopg.pq, and _wait's
        conn.close()
        raise
    if status not in (pq.ExecStatus.EMPTY_QUERY, pq.ExecStatus.COMMAND_OK):
        conn.close()
        raise OperationalError(f"connection check failed: {status!r}")


def _wait(sel: selectors.BaseSelector, deadline: float) -> None:
    remaining = deadline - time.monotonic()
    if remaining <= 0 or not sel.select(remaining):
        raise OperationalError("no answer from the server within the store timeout")
