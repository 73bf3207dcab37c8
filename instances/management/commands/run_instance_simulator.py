"""Run the instance simulator: a fake WeCom instance speaking protocol v1 over HTTP."""

import signal
import threading
import time

from django.core.management.base import BaseCommand, CommandError

from instances import protocol
from simulator import Simulator


def _non_negative(kind):
    def parse(value):
        try:
            number = kind(value)
        except ValueError:
            raise ValueError(value) from None
        if number < 0:
            raise ValueError(value)
        return number

    parse.__name__ = kind.__name__
    return parse


def _rate(value):
    number = float(value)
    if not 0 <= number <= 1:
        raise ValueError(value)
    return number


class Command(BaseCommand):
    help = "Run an instance simulator (protocol v1) with fake accounts, contacts, rooms and injected faults."

    def add_arguments(self, parser):
        nn_int, nn_float = _non_negative(int), _non_negative(float)
        parser.add_argument("--host", default="127.0.0.1", help="Interface to listen on.")
        parser.add_argument("--port", type=nn_int, default=8601, help="Port (0 = any free port).")
        parser.add_argument("--token", default="sim-token", help="Bearer token the commands must carry.")
        parser.add_argument("--accounts", type=nn_int, default=3, help="Logged-in accounts at start.")
        parser.add_argument("--contacts", type=nn_int, default=200, help="Contacts per account.")
        parser.add_argument("--rooms", type=nn_int, default=20, help="Rooms per account.")
        parser.add_argument("--members", type=nn_int, default=30, help="Members per room.")
        parser.add_argument("--seed", type=nn_int, default=1, help="Seed of the fake data and of the randomness.")
        parser.add_argument("--latency-ms", type=nn_float, default=0, help="Added to every command.")
        parser.add_argument("--error-rate", type=_rate, default=0.0, help="Share of commands answered 500 (0-1).")
        parser.add_argument("--rate-limit-per-min", type=nn_int, default=0, help="Sends per account per minute before 429 (0 = off).")
        parser.add_argument("--risk-control-after", type=nn_int, default=0, help="Sends per account before risk control (0 = off).")
        parser.add_argument("--ban-account", default=None, help="Account id or 1-based index to ban.")
        parser.add_argument("--ban-after-s", type=nn_float, default=0.0, help="Seconds after start for --ban-account.")
        parser.add_argument("--exit-after-s", type=nn_float, default=0.0, help="The WeCom client exits after this many seconds (0 = never).")
        parser.add_argument("--stop-after-s", type=nn_float, default=0.0, help="Stop the whole simulator after this many seconds (0 = never).")
        parser.add_argument("--chatter-per-min", type=nn_float, default=0.0, help="Random inbound messages per minute.")
        parser.add_argument("--duplicate-rate", type=_rate, default=0.1, help="Share of inbound messages repeated under another id.")
        parser.add_argument("--redeliver-rate", type=_rate, default=0.0, help="Share of events pushed twice (same event id).")
        parser.add_argument("--webhook-url", default=None, help="Platform webhook for events (or pushed later via PUT /v1/config).")
        parser.add_argument("--webhook-secret", default=None, help="HMAC secret for webhook signatures.")
        parser.add_argument("--instance-id", default=None, help="instance_id put in every event.")
        parser.add_argument(
            "--heartbeat-interval",
            type=nn_int,
            default=protocol.DEFAULT_HEARTBEAT_INTERVAL_S,
            help="Seconds between instance.heartbeat events.",
        )
        parser.add_argument("--login-ttl-s", type=nn_float, default=protocol.DEFAULT_LOGIN_TTL_S, help="QR code lifetime.")
        parser.add_argument("--send-delay-ms", type=nn_float, default=50, help="Delay before a queued send gets its status.")
        parser.add_argument(
            "--batch-send-max",
            type=nn_int,
            default=protocol.MAX_BATCH_SEND,
            help=f"Most messages per batch send (0 = no batch send, like a revision 1.0 instance; at most {protocol.MAX_BATCH_SEND}).",
        )

    def handle(self, *args, **opts):
        if opts["heartbeat_interval"] < 1:
            raise CommandError("--heartbeat-interval must be at least 1 second.")
        if opts["batch_send_max"] > protocol.MAX_BATCH_SEND:
            raise CommandError(f"--batch-send-max must be at most {protocol.MAX_BATCH_SEND}.")
        if opts["webhook_url"] and not opts["webhook_url"].startswith(("http://", "https://")):
            raise CommandError("--webhook-url must start with http:// or https://.")
        sim = Simulator(
            host=opts["host"],
            port=opts["port"],
            token=opts["token"],
            accounts=opts["accounts"],
            contacts=opts["contacts"],
            rooms=opts["rooms"],
            members=opts["members"],
            seed=opts["seed"],
            latency_ms=opts["latency_ms"],
            error_rate=opts["error_rate"],
            rate_limit_per_min=opts["rate_limit_per_min"],
            risk_control_after=opts["risk_control_after"],
            ban_account=opts["ban_account"],
            ban_after_s=opts["ban_after_s"],
            exit_after_s=opts["exit_after_s"],
            chatter_per_min=opts["chatter_per_min"],
            duplicate_rate=opts["duplicate_rate"],
            redeliver_rate=opts["redeliver_rate"],
            webhook_url=opts["webhook_url"],
            webhook_secret=opts["webhook_secret"],
            instance_id=opts["instance_id"],
            heartbeat_interval_s=opts["heartbeat_interval"],
            login_ttl_s=opts["login_ttl_s"],
            send_delay_ms=opts["send_delay_ms"],
            batch_send_max=opts["batch_send_max"],
        )
        try:
            url = sim.start()
        except OSError as exc:
            raise CommandError(f"Cannot listen on {opts['host']}:{opts['port']}: {exc.strerror or exc}.") from None
        token = opts["token"] or ""
        shown = f"{token[:4]}… ({len(token)} characters)" if len(token) > 8 else "set" if token else "none"
        self.stdout.write(f"Instance simulator listening on {url} (token {shown}, instance_id {sim.instance_id}).")
        self.stdout.write(f"Accounts: {', '.join(sim.accounts)}. Stats: {url}/sim/stats. Ctrl-C to stop.")
        done = threading.Event()

        def _stop(signum, frame):
            done.set()

        previous = {}
        if threading.current_thread() is threading.main_thread():
            previous = {s: signal.signal(s, _stop) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            deadline = time.monotonic() + opts["stop_after_s"] if opts["stop_after_s"] else None
            while not done.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    break
                done.wait(0.2)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            sim.stop()
        self.stdout.write("Instance simulator stopped.")
