"""Where an instance's secrets may go: the address its API token and webhook secret are bound to.

The platform sends the instance's API token (`Authorization: Bearer`, every command) and its
webhook secret (in the pushed configuration) to the instance's API URL, through its proxy when
it has one. Both secrets are bound to that destination when they are given or re-keyed
(`instances.services.endpoint`, the one way to move an instance): the config row `BINDING_KEY`
holds the destination's fingerprint. A client refuses to send them anywhere else: an address
changed by any other path (a row edited by hand, a bug) gets no secret until a token is given
for it through the endpoint service.

Pure functions, no Django: the client (instances.client) reads them too.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from instances import protocol

#: instance_configs key (system row) holding the fingerprint the secrets are bound to.
BINDING_KEY = "secrets_endpoint"


def _url(api_url) -> str:
    text = str(api_url or "").strip().rstrip("/")
    if text.endswith(protocol.PATH_PREFIX):
        text = text[: -len(protocol.PATH_PREFIX)]
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return text
    scheme = (parts.scheme or "").lower()
    host = (parts.hostname or "").lower()
    port = port or {"http": 80, "https": 443}.get(scheme)
    return f"{scheme}://{host}:{port}{parts.path}"


def fingerprint(api_url, proxy_host=None, proxy_port=None) -> str:
    """The destination of an instance's calls: its normalised API URL and its proxy (host and
    port; the proxy's credentials do not change where the bytes go)."""
    proxy = "direct"
    if proxy_host:
        proxy = f"{str(proxy_host).strip().lower()}:{proxy_port or ''}"
    return f"{_url(api_url)} via {proxy}"


def fingerprint_of(instance) -> str:
    return fingerprint(getattr(instance, "api_url", None), getattr(instance, "proxy_host", None),
                       getattr(instance, "proxy_port", None))


def is_bound(instance, bound) -> bool:
    """Whether the secrets bound to `bound` (a stored fingerprint, or None) may go to the
    instance's current destination."""
    return bool(bound) and bound == fingerprint_of(instance)
