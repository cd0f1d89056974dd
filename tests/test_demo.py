"""The demo, run as the README's first command runs it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from celery_brokers import open_broker, requested_brokers

DEMO = Path(__file__).resolve().parent.parent / "demo" / "run.py"

#: The demo's default broker (the filesystem transport, no server), and the
#: server brokers this run names, which ``--broker`` takes instead.
BROKERS = ["filesystem", *[b for b in requested_brokers() if b in ("redis", "amqp")]]


@pytest.mark.parametrize("broker", BROKERS)
def test_demo_shows_one_id_through_every_process_and_exits_0(
    broker: str, tmp_path: Path
) -> None:
    """The demo finishes in seconds, exits 0, and its output shows what it claims."""
    with open_broker(broker, tmp_path) as opened:
        # The default needs no argument, as the README runs it.
        arguments = [] if broker == "filesystem" else ["--broker", opened.url]
        result = subprocess.run(
            [sys.executable, "-W", "error", DEMO, *arguments],
            cwd=DEMO.parent,
            capture_output=True,
            text=True,
            timeout=90,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    out = re.sub(r" +", " ", result.stdout)
    # Step 1: the client's id is logged by both services and the worker, and
    # the worker's call back to orders carries it home.
    assert "orders request_id=checkout-7f3a order 1 received" in out
    assert "inventory request_id=checkout-7f3a checking stock" in out
    assert "inventory (WSGI) saw: checkout-7f3a" in result.stdout
    assert "worker request_id=checkout-7f3a shipping order 1" in out
    assert "orders request_id=checkout-7f3a order 1 shipped: the worker called" in out
    # The worker logs a task it received before it runs, with no id: not the
    # previous task's.
    received = re.findall(
        r"worker request_id=(\S+) Task demo.ship_order\S+ received", out
    )
    assert received == ["-", "-", "-"]
    # Step 4: the hostile value gets a fresh id that travels to every process.
    fresh = re.search(r"x-request-id: ([0-9a-f]{32}) \(a fresh id\)", out)
    assert fresh is not None, out
    assert f"inventory request_id={fresh.group(1)}" in out
    assert f"worker request_id={fresh.group(1)} shipping order 3" in out
    assert f"orders request_id={fresh.group(1)} order 3 shipped" in out
    # The escape sequences were never written raw, only as the demo's repr.
    assert "\x1b" not in result.stdout
    assert "\x1b" not in result.stderr
    assert "FAILED" not in result.stderr
