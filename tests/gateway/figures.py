"""Figures the hardening suite reports at the end of a run (tests/plugin.py prints them): how many
fuzz requests were sent, how many faults were injected, and what was lost or counted twice."""

from __future__ import annotations

from typing import Any

FIGURES: dict[str, dict[str, Any]] = {}
