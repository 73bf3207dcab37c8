"""Run the puppet-service bridge:

    python -m bridge --port 8621 --token INSTANCE_TOKEN --state data/bridge.sqlite3 \\
        --provider 'PUPPET_TOKEN@grpc.provider.example:443' [--provider ...] [--ca-file ca.pem]

The platform registers it as an instance (``manage.py register_instance --api-url
http://host:8621 --token INSTANCE_TOKEN --max-accounts <number of tokens>``) and pushes the
webhook configuration; tokens can also be set by a config push (``puppet_services``).
See docs/bridge.md.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from bridge.runtime import Bridge
from bridge.server import BridgeServer
from instances.protocol import MAX_WEBHOOK_BATCH


def parse_provider(value, ca_file, server_name):
    token, sep, endpoint = value.rpartition("@")
    if not sep or not token or ":" not in endpoint:
        raise argparse.ArgumentTypeError(f"--provider {value!r}: expected TOKEN@HOST:PORT")
    spec = {"token": token, "endpoint": endpoint, "server_name": server_name}
    if ca_file:
        spec["ca_file"] = ca_file
    return spec


def batch_size(value):
    try:
        size = int(value)
    except ValueError:
        size = 0
    if not 1 <= size <= MAX_WEBHOOK_BATCH:
        raise argparse.ArgumentTypeError(f"{value!r}: an integer from 1 to {MAX_WEBHOOK_BATCH}")
    return size


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bridge", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8621)
    parser.add_argument("--token", required=True, help="the bearer token the platform uses for this instance")
    parser.add_argument("--state", required=True, help="SQLite file of the outbox and the send store")
    parser.add_argument("--provider", action="append", default=[], help="TOKEN@HOST:PORT of a puppet-service")
    parser.add_argument("--ca-file", help="CA of the providers' TLS (default: the Wechaty root CA)")
    parser.add_argument("--server-name", default="insecure", help="TLS server name of the providers")
    parser.add_argument("--instance-id")
    parser.add_argument("--webhook-url")
    parser.add_argument("--webhook-secret")
    parser.add_argument("--heartbeat-interval", type=int)
    parser.add_argument("--webhook-batch-max", type=batch_size, metavar="N",
                        help="events a webhook request may carry (protocol 1.2; the platform's config push "
                             f"sets it too), 1 to {MAX_WEBHOOK_BATCH}")
    parser.add_argument("--echo-wait", type=float, default=30.0)
    parser.add_argument("--ding-interval", type=float, default=10.0)
    parser.add_argument("--public-url", help="base URL of the media links in inbound messages "
                        "(default: http://HOST:PORT; set it when the platform reaches the bridge otherwise)")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        providers = [parse_provider(p, args.ca_file, args.server_name) for p in args.provider]
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    bridge = Bridge(args.state, token=args.token, providers=providers, instance_id=args.instance_id,
                    webhook_url=args.webhook_url, webhook_secret=args.webhook_secret,
                    heartbeat_interval_s=args.heartbeat_interval, webhook_batch_max=args.webhook_batch_max,
                    echo_wait_s=args.echo_wait,
                    ding_interval_s=args.ding_interval, public_url=args.public_url)
    try:
        server = BridgeServer(bridge, args.host, args.port)
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    bridge.start()
    url = server.start()
    print(f"bridge listening on {url} with {len(bridge.providers)} provider(s)", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    server.stop()
    bridge.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
