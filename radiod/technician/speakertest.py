"""``radiod test``: the technician's test of every speaker line, run by the daemon, printed step by step."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from radiod.config import Config
from radiod.node.control import TEST_TIMEOUT_S, socket_paths
from radiod.technician.client import NotRunning, request


def run_test(config: Config, lines: Sequence[str] | None) -> int:
    """``radiod test``: ask the daemon for the technician's test and print each step as it ends.

    0 when every step passed, 1 when one failed or was interrupted, 2 when the daemon is not running (the
    relays belong to the daemon: without it, ``radiod speak`` plays through them).
    """
    def show(step: dict[str, Any]) -> None:
        print(f"{step['step']:<10} {step['result'].upper():<11} {step['detail']}", flush=True)

    print(f"testing {', '.join(lines) if lines else 'every speaker line'}: after the current bulletin, if any; "
          "an emergency interrupts it", flush=True)
    try:
        result = request(socket_paths(config), {"cmd": "test", "lines": list(lines) if lines else None},
                         timeout=TEST_TIMEOUT_S, on_progress=show)
    except NotRunning as exc:
        print(f"{exc}; `radiod speak` plays through the relays without the daemon", file=sys.stderr)
        return 2
    print(result["result"])
    return 0 if result["result"].startswith("passed") else 1
