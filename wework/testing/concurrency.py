"""Run the same piece of work in several threads at once, as concurrent requests would."""
import threading
from collections.abc import Callable

from django.db import close_old_connections, connections


def run_at_once(work: Callable[[int], None], threads: int) -> list[BaseException]:
    """Call `work(n)` for n in range(threads), each in its own thread, all released together
    by a barrier; returns the exceptions raised (empty when every call succeeded). Each thread
    closes its database connections (every alias of a per-module layout), so none outlives
    the test."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads)

    def run(n: int) -> None:
        try:
            barrier.wait()
            work(n)
        except Exception as exc:  # noqa: BLE001 - returned to the test, which asserts on it
            errors.append(exc)
        finally:
            close_old_connections()
            connections.close_all()

    started = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for t in started:
        t.start()
    for t in started:
        t.join()
    return errors
