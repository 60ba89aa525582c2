"""Many deferred waits in one event loop: the small-count run of benchmarks/deferred_waits.py, with bounds.

The benchmark itself (``.venv/bin/python benchmarks/deferred_waits.py --triggers 500``) reports the figures for
500 waits; this test runs the same code with a few dozen and holds it to what the design promises: every wait
ends with exactly one ``resolved`` event, they all share one HTTP pool, and a wait holds kilobytes, not the
~0.8 MB a private pool would cost it.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "deferred_waits.py"


def benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deferred_waits_benchmark", BENCHMARK)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_forty_concurrent_waits_cost_kilobytes_each_and_end_with_one_event_each():
    bench = benchmark()
    result = bench.run(triggers=40, seconds=2.0, poke_interval=0.5)
    print("\n" + bench.report(result))
    assert result.resolved_events == 40
    assert result.events_per_trigger == 1
    assert result.http_pools == 1
    assert result.polls >= 40  # every wait polled during the window
    assert result.throttled_429 == 0
    assert result.traced_kb_per_wait < 100  # measured ~15-30 KB; a private pool would add ~800 KB of RSS
    assert result.cpu_ms_per_poll < 50  # measured ~3 ms on a 2-core machine; this bound only catches blow-ups
