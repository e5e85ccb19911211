"""Test-run ordering: the longest tests start first.

With ``pytest -n 2`` the workers take tests in collection order. The notebook executions
(minutes each) and the real-sampling tests were collected late, so the run ended with one
worker executing notebooks alone while the other idled. Starting them first lets the short
tests fill the gaps; the set of tests and each test's outcome do not change.
"""

from __future__ import annotations

import pytest


def _weight(item: pytest.Item) -> int:
    if item.get_closest_marker("notebooks"):
        return 0
    if item.get_closest_marker("sampling"):
        return 1
    return 2


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    items.sort(key=_weight)   # stable: the order within each group is kept
