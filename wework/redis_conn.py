"""One way to reach Redis, single server or Redis Cluster, for every part of the platform.

`REDIS_URL` is either an ordinary `redis://host:port/db` URL or `redis+cluster://host:port[,host:
port...]` (seed nodes of a Redis Cluster; the client learns the others). The cluster client is
redis-py's `RedisCluster`: it follows MOVED/ASK redirections, re-reads the slot map after a
failover and loads Lua scripts on the node that owns their keys (NOSCRIPT is answered by a
SCRIPT LOAD there). Keys that one script or one transaction touches together must share a hash
tag (`{...}`): `hash_tag()` builds it.

`client()` is the process's client for `REDIS_URL` (a new one after fork); the Django cache
uses the same kind through `ClusterConnectionFactory` / `ClusterClient` (django-redis options in
`wework/settings.py`).
"""
from __future__ import annotations

import os
import threading
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import ClusterDownError, SlotNotCoveredError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry
from django_redis.client import DefaultClient
from django_redis.exceptions import ConnectionInterrupted
from django_redis.pool import ConnectionFactory

CLUSTER_SCHEME = "redis+cluster"

_lock = threading.Lock()
_clients: dict[tuple[int, str], Any] = {}


def is_cluster(url: str | None) -> bool:
    return bool(url) and urlsplit(url).scheme == CLUSTER_SCHEME


def cluster_nodes(url: str) -> list[tuple[str, int]]:
    """The seed nodes of a `redis+cluster://h1:p1,h2:p2` URL (port 6379 when left out)."""
    netloc = urlsplit(url).netloc.rsplit("@", 1)[-1]
    nodes = []
    for part in filter(None, (p.strip() for p in netloc.split(","))):
        host, _, port = part.rpartition(":") if ":" in part else (part, "", "6379")
        nodes.append((host.strip("[]"), int(port or 6379)))
    if not nodes:
        raise ValueError(f"REDIS_URL {url!r} names no cluster node.")
    return nodes


def _cluster_kwargs(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    kwargs: dict[str, Any] = {
        "socket_connect_timeout": float(query.get("connect_timeout", 1.0)),
        "socket_timeout": float(query.get("socket_timeout", 5.0)),
        "retries": int(query.get("retries", 3)),
        "failover_wait_s": float(query.get("failover_wait_s", 15.0)),
    }
    userinfo = parts.netloc.rsplit("@", 1)[0] if "@" in parts.netloc else ""
    if userinfo:
        user, _, password = userinfo.partition(":")
        kwargs["username"] = user or None
        kwargs["password"] = password or None
    return kwargs


class FailoverRedisCluster(RedisCluster):
    """`RedisCluster` that waits out a master failover. redis-py retries a command at once
    against the same dead master (the slot map still names it) and gives up within 0.1 s; a
    failover takes cluster-node-timeout plus an election (4-5 s measured on the test cluster
    with a 3 s timeout). Commands that meet a refused connection or a cluster that is down are
    sent again, after a pause, for up to `failover_wait_s`."""

    failover_wait_s = 15.0

    def execute_command(self, *args, **kwargs):
        deadline = time.monotonic() + self.failover_wait_s
        while True:
            try:
                return super().execute_command(*args, **kwargs)
            except (RedisConnectionError, RedisTimeoutError, ClusterDownError, SlotNotCoveredError):
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.25)


def make_client(url: str):
    """A new client for `url`: `RedisCluster` for `redis+cluster://`, else `redis.Redis`."""
    if not is_cluster(url):
        return redis.Redis.from_url(url)
    kwargs = _cluster_kwargs(url)
    retries = int(kwargs.pop("retries", 3))
    wait = float(kwargs.pop("failover_wait_s", FailoverRedisCluster.failover_wait_s))
    found = FailoverRedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in cluster_nodes(url)],
        retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries),
        **kwargs,
    )
    found.failover_wait_s = wait
    return found


def client(url: str | None = None):
    """The process's shared client for `url` (default: `settings.REDIS_URL`), or None when no
    Redis is configured."""
    if url is None:
        from django.conf import settings

        url = getattr(settings, "REDIS_URL", "")
    if not url:
        return None
    key = (os.getpid(), url)
    found = _clients.get(key)
    if found is None:
        with _lock:
            found = _clients.get(key)
            if found is None:
                found = _clients[key] = make_client(url)
    return found


def hash_tag(*parts: object) -> str:
    """`{a:b}`: every key containing this tag lives in one cluster slot."""
    return "{" + ":".join(str(p) for p in parts) + "}"


def primaries(redis_client) -> list:
    """The clients to run a whole-keyspace command on (SCAN, FLUSHDB): each primary of a
    cluster, or the one server."""
    if isinstance(redis_client, RedisCluster):
        return [redis_client.get_redis_connection(node) for node in redis_client.get_primaries()]
    return [redis_client]


# --- django-redis on a cluster -----------------------------------------------------------------

class ClusterConnectionFactory(ConnectionFactory):
    """django-redis connection factory returning the process's `RedisCluster` client."""

    def connect(self, url: str):
        return client(url)

    def disconnect(self, connection) -> None:
        connection.close()


class ClusterClient(DefaultClient):
    """django-redis client for a cluster: the commands whose keys may span slots are split per
    slot (redis-py's non-atomic multi-key helpers), whole-keyspace commands run on every
    primary. Everything else is the default client's, routed by `RedisCluster`."""

    def get_many(self, keys, version=None, client=None):
        if client is None:
            client = self.get_client(write=False)
        if not keys:
            return {}
        map_keys = {self.make_key(k, version=version): k for k in keys}
        try:
            values = client.mget_nonatomic(list(map_keys))
        except Exception as exc:  # the default client's contract
            raise ConnectionInterrupted(connection=client) from exc
        return {map_keys[k]: self.decode(v) for k, v in zip(map_keys, values, strict=True) if v is not None}

    def clear(self, client=None) -> None:
        if client is None:
            client = self.get_client(write=True)
        for node in primaries(client):
            node.flushdb()

    def delete_pattern(self, pattern, version=None, prefix=None, client=None, itersize=None):
        if client is None:
            client = self.get_client(write=True)
        pattern = self.make_pattern(pattern, version=version, prefix=prefix)
        count = 0
        for node in primaries(client):
            for key in node.scan_iter(match=pattern, count=itersize or 500):
                count += node.delete(key)
        return count
