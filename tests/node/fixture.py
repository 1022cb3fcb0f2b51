"""The `real_node` fixture: one node per test module (one per machine: keep every test that uses it in one
module, so that `pytest -n N --dist loadfile` runs them in one worker). It always tears the node down, also
when a test fails or the start itself fails; `atexit` covers an interrupted session."""

from __future__ import annotations

import atexit

import pytest

from node import host
from node.node import Node, NodeUnavailable


@pytest.fixture(scope="module")
def real_node():
    try:
        node = Node()
    except NodeUnavailable as exc:
        pytest.skip(str(exc))
    node.sysctls_before = host.read_sysctls()  # what the teardown must give back, as the test checks it
    atexit.register(_stop_once, node)
    node.start()
    try:
        yield node
    finally:
        _stop_once(node)
        atexit.unregister(_stop_once)


def _stop_once(node: Node) -> None:
    if not node.stopped:
        node.stop()
