"""The suite runs with networking disabled (scripts/test.sh puts it in a
network namespace); this checks that it really is isolated, so a test that
passes here cannot have depended on the network."""
from __future__ import annotations

import os
import socket

import pytest


@pytest.mark.skipif(os.environ.get("DIFFILL_TEST_NO_NETWORK") != "1",
                    reason="not run through scripts/test.sh in a network namespace")
def test_suite_has_no_network() -> None:
    with pytest.raises(OSError):
        socket.getaddrinfo("pypi.org", 443)
    with socket.socket() as s, pytest.raises(OSError):
        s.settimeout(3)
        s.connect(("192.0.2.1", 443))  # TEST-NET-1: any route out would try it
    with socket.socket() as s:  # loopback still works (editors talk to the server over it)
        s.bind(("127.0.0.1", 0))
        s.listen()
