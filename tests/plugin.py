"""Loads the suite's shared fixtures (tests/fixtures.py) for every test folder, in place of a
conftest.py at the top of the repository. `-p tests.plugin` (.pytest.ini) imports this module before
pytest-django sets Django up, and the fixtures import models, so they are registered at configure
time, once Django is ready."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.import_plugin("tests.fixtures")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from tests.gateway.figures import FIGURES

    for name, figures in FIGURES.items():
        terminalreporter.write_line(f"{name}: {figures}")
