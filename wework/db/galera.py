"""What a Galera cluster needs from one connection: whether it is on a Galera node, and a
causal read (the node first applies everything committed anywhere in the cluster).

Galera replicates synchronously but applies asynchronously: a write (or a DDL statement in
total order) committed through one node is certified everywhere, yet another node may apply it
a moment later. Two connections of one process can reach two nodes (the proxy moved the write
node between their connects, or clients connect to nodes directly), so what one of them just
wrote may be missing for the other for that moment. A causal read closes the gap where it
matters; it costs a cluster round trip, so it is used where a miss would be an error, never on
every read.
"""
from __future__ import annotations

from contextlib import contextmanager

#: wsrep_sync_wait bit for reads (SELECT, SHOW, BEGIN).
SYNC_WAIT_READS = 1

_GALERA_ATTR = "_wework_galera"


def is_galera(connection) -> bool:
    """True when `connection` (a Django connection) is on a MariaDB server with Galera
    replication on. Asked once per connection wrapper: a server does not change that."""
    if connection.vendor != "mysql":
        return False
    known = getattr(connection, _GALERA_ATTR, None)
    if known is None:
        with connection.cursor() as cursor:
            # SHOW answers nothing on a server without wsrep variables (MySQL).
            cursor.execute("SHOW VARIABLES LIKE 'wsrep_on'")
            row = cursor.fetchone()
        known = row is not None and str(row[1]).upper() == "ON"
        setattr(connection, _GALERA_ATTR, known)
    return known


@contextmanager
def causal_reads(connection):
    """Reads on `connection` inside the block wait until its node has applied everything
    committed in the cluster before each read started; the session's setting is restored
    after. Not Galera: nothing changes."""
    if not is_galera(connection):
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SET @wework_sync_wait = @@SESSION.wsrep_sync_wait, "
                       "SESSION wsrep_sync_wait = @@SESSION.wsrep_sync_wait | %s", [SYNC_WAIT_READS])
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET SESSION wsrep_sync_wait = @wework_sync_wait")


def node_name(connection) -> str:
    """Where `connection` is: the node's wsrep name and port (for logs)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT @@wsrep_node_name, @@port")
        name, port = cursor.fetchone()
    return f"{name or '?'}:{port}"
