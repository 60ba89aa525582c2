"""What importing the provider adds to DAG parsing: time over ``import airflow.sdk``, and HTTP libraries loaded.

    .venv/bin/python benchmarks/import_cost.py [--rounds 7]

Each round is a fresh interpreter run with ``-X importtime``; the cost of a module is its cumulative import
time minus what ``airflow.sdk`` (imported first, as every DAG file does) already paid. The median over the
rounds is reported. Also lists any HTTP library (requests, httpx, aiohttp, urllib3) that importing the module
loads on top of what Airflow itself loads: DAG files are parsed every few seconds, and must not pay for them.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
from typing import Any

MODULES = (
    "airflow_provider_coupa_ihr.operators.records",
    "airflow_provider_coupa_ihr.operators.bulk",
    "airflow_provider_coupa_ihr.operators.runs",
    "airflow_provider_coupa_ihr.sensors.coupa",
    "airflow_provider_coupa_ihr.notifications.coupa",
)
HTTP_LIBRARIES = ("requests", "httpx", "aiohttp", "urllib3")
_LINE = re.compile(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|\s+(\S.*)$")

PROBE = """
import sys, json
import airflow.sdk
before = set(sys.modules)
import {module}
added = sorted(m for m in set(sys.modules) - before if m.split(".")[0] in {http!r})
print(json.dumps(added))
"""


def one_round(module: str) -> tuple[float, list[str]]:
    code = PROBE.format(module=module, http=HTTP_LIBRARIES)
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, check=True)
    cumulative: dict[str, int] = {}
    for line in done.stderr.splitlines():
        match = _LINE.search(line)
        if match:
            cumulative[match.group(3).strip()] = int(match.group(2))
    # ``-X importtime`` prints each module once, when first imported, with the cumulative time of everything
    # it pulled in that was not loaded yet. Importing ``a.b.c`` imports ``a``, then ``a.b``, then ``a.b.c``,
    # each completely before the next, so their cumulative times are disjoint and add up to the whole cost.
    parts = module.split(".")
    ours = sum(cumulative.get(".".join(parts[:i]), 0) for i in range(1, len(parts) + 1))
    return ours / 1000.0, json.loads(done.stdout.strip().splitlines()[-1])


def measure(rounds: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for module in MODULES:
        try:
            samples = [one_round(module) for _ in range(rounds)]
        except subprocess.CalledProcessError as exc:
            out[module] = {"error": exc.stderr.strip().splitlines()[-1] if exc.stderr else str(exc)}
            continue
        out[module] = {
            "import_ms_median": statistics.median(s[0] for s in samples),
            "http_libraries_added": samples[0][1],
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    result = measure(parser.parse_args().rounds)
    for module, r in result.items():
        if "error" in r:
            print(f"{module:52} not importable: {r['error']}")
        else:
            http = ", ".join(r["http_libraries_added"]) or "none"
            print(f"{module:52} {r['import_ms_median']:6.1f} ms over airflow.sdk; HTTP libraries added: {http}")


if __name__ == "__main__":
    main()
