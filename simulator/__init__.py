"""Instance simulator: a real HTTP server speaking instance protocol v1 (see server.py)."""

from simulator.server import SimError, Simulator

__all__ = ["SimError", "Simulator"]
