"""Small helpers shared by every benchmark in `bench/`.

Conventions
-----------
* One file per topic: `bench/bench_<topic>.py`, runnable as
  `.venv/bin/python bench/bench_<topic>.py [--quick]` from the project root.
* Each benchmark measures its figure AND a raw baseline in the same run (raw SQL through the same
  driver, or a bare Django view) and prints one line per comparison with `report()`:
  `name: X unit | baseline: Y unit | ratio: Z`.
* `scripts/bench` runs them all; `bench/README.md` holds the latest figures.

Typical use::

    from harness import bench_args, setup_django, time_call, report

    args = bench_args("What this measures")
    setup_django(args)                 # dedicated database wework_bench, migrated
    from accounts.models import User   # Django imports only after setup_django()
    stats = time_call(lambda: list(User.objects.all()[:50]), repeats=args.repeats)
    report("ORM list 50", stats.median_ms, "ms", base.median_ms, "ms")

Database: by default a dedicated MariaDB database `wework_bench` on 127.0.0.1:3306, dropped and
created again for each run (so runs are reproducible and never touch development data). Override
with `--database-url` or the environment variable `BENCH_DATABASE_URL` (for example
`mysql://root@127.0.0.1:3306/wework_bench_h3` to keep parallel runs apart, or
`sqlite:////tmp/bench.sqlite3`). `--reuse-db` skips the drop. `BENCH_REDIS_URL` (or
`--redis-url`) selects a Redis cache, a database of its own: it is flushed with every fresh
bench database; unset means the local in-process cache.

Django runs with production-like settings (DEBUG off: no query log growing in memory), but with
HTTPS redirects and secure cookies off so that the in-process test client can talk to it.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlparse

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
DEFAULT_DATABASE_URL = "mysql://root@127.0.0.1:3306/wework_bench"

if str(PROJECT_DIR) not in sys.path:
    sys.path.insert(0, str(PROJECT_DIR))

_results: list[dict] = []


# --- Arguments ------------------------------------------------------------------------------
def bench_args(description: str, argv=None, extra=None) -> argparse.Namespace:
    """Common command line: --quick, --repeats, --database-url, --redis-url, --reuse-db, --json.

    `extra(parser)` may add benchmark-specific options.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true",
                        help="fewer repeats and smaller data: a smoke run, figures are noisy")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed repeats per measurement (default 200, 30 with --quick)")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL",
                                                                 DEFAULT_DATABASE_URL))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", ""))
    parser.add_argument("--reuse-db", action="store_true",
                        help="keep an existing bench database instead of dropping it")
    parser.add_argument("--keep-db", action="store_true",
                        help="do not drop the bench database at the end")
    parser.add_argument("--json", metavar="FILE", default=None,
                        help="also write the reported lines as JSON (default bench/results/<name>.json)")
    if extra:
        extra(parser)
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = 30 if args.quick else 200
    args.script = Path(sys.argv[0]).stem
    return args


# --- Django ---------------------------------------------------------------------------------
def setup_django(args_or_url=None, *, migrate=True, fresh=None, redis_url=None):
    """Point Django at the bench database, create it (drop first unless reusing), migrate.

    Accepts the namespace from `bench_args()` or a database URL. Returns the database URL used.
    Registers the database to be dropped at exit unless `--keep-db` was given.
    """
    keep = False
    if isinstance(args_or_url, argparse.Namespace):
        url = args_or_url.database_url
        redis_url = args_or_url.redis_url if redis_url is None else redis_url
        fresh = (not args_or_url.reuse_db) if fresh is None else fresh
        keep = args_or_url.keep_db
    else:
        url = args_or_url or os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    fresh = True if fresh is None else fresh

    os.environ["DATABASE_URL"] = url
    if redis_url:
        os.environ["REDIS_URL"] = redis_url
    else:
        os.environ.pop("REDIS_URL", None)
    os.environ["DJANGO_SETTINGS_MODULE"] = "wework.settings"
    os.environ["DJANGO_DEBUG"] = "0"
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-secret-key-" + "b" * 40)
    os.environ.setdefault("FIELD_ENCRYPTION_KEYS", "YmVuY2gtb25seS1maWVsZC1lbmNyeXB0aW9uLWtleSE=")
    os.environ["DJANGO_ALLOWED_HOSTS"] = "testserver,localhost,127.0.0.1"
    os.environ["DJANGO_SECURE_SSL_REDIRECT"] = "0"
    os.environ["DJANGO_SECURE_COOKIES"] = "0"
    os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "1")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    if url.startswith("sqlite"):
        os.environ.setdefault("WEWORK_DATA_DIR", str(Path(urlparse(url).path).parent))

    if redis_url and fresh:
        # A fresh database reuses ids: state kept in Redis under old ids (a task's dispatcher
        # leases, an account's pace) would act on the new rows. The bench Redis db is its own.
        import redis

        redis.Redis.from_url(redis_url).flushdb()
    if is_mysql(url):
        create_bench_database(url, drop_first=fresh)
        if not keep:
            import atexit

            atexit.register(drop_bench_database, url)
    elif fresh and url.startswith("sqlite"):
        path = Path(urlparse(url).path)
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)

    import django

    django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)
    return url


def is_mysql(url: str) -> bool:
    return url.startswith(("mysql://", "mysql2://", "mariadb://"))


def _mysql_server(url: str):
    import MySQLdb

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    if not name or not name.replace("_", "").isalnum():
        raise SystemExit(f"bench: refusing database name {name!r} (letters, digits, _ only).")
    conn = MySQLdb.connect(host=parsed.hostname or "127.0.0.1", port=parsed.port or 3306,
                           user=parsed.username or "root", passwd=parsed.password or "",
                           charset="utf8mb4")
    return conn, name


def create_bench_database(url: str = DEFAULT_DATABASE_URL, drop_first: bool = True) -> str:
    """Create the dedicated bench database on MariaDB (utf8mb4_unicode_ci)."""
    conn, name = _mysql_server(url)
    try:
        cursor = conn.cursor()
        if drop_first:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{name}` "
                       "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    finally:
        conn.close()
    return name


def drop_bench_database(url: str = DEFAULT_DATABASE_URL) -> None:
    try:
        from django.db import connections

        connections.close_all()
    except Exception:  # noqa: BLE001 - Django not set up: nothing to close
        pass
    conn, name = _mysql_server(url)
    try:
        conn.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        conn.close()


# --- Timing ---------------------------------------------------------------------------------
@dataclass
class Stats:
    """Per-call timings in seconds, with the usual summaries in milliseconds."""

    samples: list[float] = field(repr=False)
    number: int = 1  # calls per sample

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples) * 1000

    @property
    def mean_ms(self) -> float:
        return statistics.fmean(self.samples) * 1000

    @property
    def min_ms(self) -> float:
        return min(self.samples) * 1000

    def p(self, q: float) -> float:
        """q-th percentile in milliseconds (0 <= q <= 100)."""
        return percentile(self.samples, q) * 1000

    @property
    def per_second(self) -> float:
        return 1.0 / statistics.median(self.samples)

    def summary(self) -> str:
        return (f"median {self.median_ms:.3f} ms, p95 {self.p(95):.3f} ms, "
                f"p99 {self.p(99):.3f} ms, min {self.min_ms:.3f} ms, n={len(self.samples)}")


def percentile(values, q: float) -> float:
    """Linear-interpolated percentile (same as numpy's default), q in [0, 100]."""
    data = sorted(values)
    if not data:
        raise ValueError("percentile of no values")
    if len(data) == 1:
        return data[0]
    pos = (len(data) - 1) * (q / 100.0)
    lower = int(pos)
    upper = min(lower + 1, len(data) - 1)
    return data[lower] + (data[upper] - data[lower]) * (pos - lower)


def time_call(fn, repeats: int = 200, number: int = 1, warmup: int | None = None) -> Stats:
    """Run `fn` `warmup` times, then `repeats` samples of `number` calls each.

    Each sample is the mean time of one call within it. GC is collected before and disabled
    during each sample so that a collection does not land on one side of a comparison only.
    """
    if warmup is None:
        warmup = max(3, repeats // 10)
    for _ in range(warmup):
        fn()
    samples = []
    clock = time.perf_counter
    for _ in range(repeats):
        gc.collect()
        gc.disable()
        try:
            start = clock()
            for _ in range(number):
                fn()
            samples.append((clock() - start) / number)
        finally:
            gc.enable()
    return Stats(samples, number)


def time_interleaved(fns: dict, repeats: int = 200, number: int = 1, warmup: int | None = None):
    """Like `time_call` for several functions, alternating them in each round.

    Alternating spreads machine noise (other processes on the 2 shared cores) evenly over the
    figure and its baseline. Returns {name: Stats}.
    """
    if warmup is None:
        warmup = max(3, repeats // 10)
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    samples = {name: [] for name in fns}
    clock = time.perf_counter
    for _ in range(repeats):
        for name, fn in fns.items():
            gc.collect()
            gc.disable()
            try:
                start = clock()
                for _ in range(number):
                    fn()
                samples[name].append((clock() - start) / number)
            finally:
                gc.enable()
    return {name: Stats(values, number) for name, values in samples.items()}


class Timer:
    """`with Timer() as t: ...; t.seconds` for one-off, longer operations (bulk loads)."""

    def __enter__(self):
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self._start
        return False


# --- Reporting ------------------------------------------------------------------------------
def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def report(name: str, value: float, unit: str, baseline_value: float | None = None,
           baseline_unit_label: str | None = None, note: str = "") -> str:
    """Print `name: X unit | baseline: Y unit | ratio: Z` and remember it for the JSON file.

    `baseline_unit_label` is the baseline's unit (defaults to `unit`); it may carry a short
    label in parentheses, e.g. "ms (raw SQL)". The ratio is value / baseline (so for times,
    how many times slower the figure is than its baseline; for rates, the reverse).
    """
    line = f"{name}: {_fmt(value)} {unit}"
    ratio = None
    if baseline_value is not None:
        label = baseline_unit_label or unit
        ratio = value / baseline_value if baseline_value else float("inf")
        line += f" | baseline: {_fmt(baseline_value)} {label} | ratio: {ratio:.2f}"
    if note:
        line += f"  # {note}"
    print(line, flush=True)
    _results.append({"name": name, "value": value, "unit": unit, "baseline": baseline_value,
                     "baseline_unit": baseline_unit_label or unit, "ratio": ratio, "note": note})
    return line


def environment_line(database_url: str | None = None) -> str:
    """One line describing the run (Python, Django, database server), printed first."""
    import platform

    parts = [f"python {platform.python_version()}"]
    try:
        import django

        parts.append(f"django {django.get_version()}")
        from django.db import connection

        if connection.vendor == "mysql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT VERSION()")
                parts.append(f"mysql {cursor.fetchone()[0]}")
        else:
            parts.append(connection.vendor)
        from django.conf import settings

        parts.append("cache " + settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1])
    except Exception:  # noqa: BLE001 - settings not configured: name the URL only
        if database_url:
            parts.append(urlparse(database_url).scheme)
    parts.append(f"{os.cpu_count()} cpu")
    line = "# " + ", ".join(parts)
    print(line, flush=True)
    return line


def save_results(args: argparse.Namespace | None = None, name: str | None = None) -> Path:
    """Write the reported lines to bench/results/<name>.json (not committed)."""
    name = name or (args.script if args else Path(sys.argv[0]).stem)
    path = Path(args.json) if (args and args.json) else RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "quick": bool(args and args.quick),
               "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "results": _results}
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False))
    return path


__all__ = [
    "Stats", "Timer", "bench_args", "create_bench_database", "drop_bench_database",
    "environment_line", "is_mysql", "percentile", "report", "save_results", "setup_django",
    "time_call", "time_interleaved", "asdict",
]
