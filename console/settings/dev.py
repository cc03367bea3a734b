"""Local development (`make run`): debug on, the embedded defaults from base."""

from __future__ import annotations

from .base import *  # noqa: F403

DEBUG = True
ALLOWED_HOSTS = ["*"]
