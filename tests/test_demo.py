"""The demo, run as the README's first command runs it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parent.parent / "demo" / "run.py"


def test_demo_shows_one_id_through_both_services_and_exits_0() -> None:
    """The demo finishes in seconds, exits 0, and its output shows what it claims."""
    result = subprocess.run(
        [sys.executable, "-W", "error", DEMO],
        cwd=DEMO.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    # Step 1: the client's id is logged by both services and seen by the WSGI one.
    assert re.search(r"orders +request_id=checkout-7f3a +order 1 received", out)
    assert re.search(r"inventory +request_id=checkout-7f3a +checking stock", out)
    assert "inventory (WSGI) saw: checkout-7f3a" in out
    # Step 4: the hostile value gets a fresh id that travels to the WSGI service.
    fresh = re.search(r"x-request-id: ([0-9a-f]{32}) \(a fresh id\)", out)
    assert fresh is not None, out
    assert f"inventory request_id={fresh.group(1)}" in re.sub(r" +", " ", out)
    # The escape sequences were never written raw, only as the demo's repr.
    assert "\x1b" not in out
    assert "\x1b" not in result.stderr
    assert "FAILED" not in result.stderr
