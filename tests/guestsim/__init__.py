"""guestsim: a vSphere guest-operations simulator that pyVmomi talks to unchanged.

Start it with ``python -m guestsim`` (PYTHONPATH=tests) or in-process with :class:`Simulator`.
"""

from __future__ import annotations

from .server import Simulator

__all__ = ['Simulator']
