"""The front door: every public name from ``airflow_provider_coupa_ihr.client``, without loading HTTP libraries."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import airflow_provider_coupa_ihr.client as front_door
from airflow_provider_coupa_ihr.client import aio, config, errors, resolution, retry, sync


def test_every_public_name_is_the_one_its_module_defines():
    homes = {module.__name__.rsplit(".", 1)[1]: module for module in (aio, config, errors, resolution, retry, sync)}
    for name in front_door.__all__:
        value = getattr(front_door, name)
        assert value is getattr(homes[front_door._HOMES[name]], name)
    assert set(front_door.__all__) == set(front_door._HOMES)
    assert set(front_door.__all__) <= set(dir(front_door))


def test_the_whole_error_family_is_at_the_door():
    from airflow_provider_coupa_ihr.client import CoupaError

    family = {name for name in errors.__all__ if name.startswith("Coupa")}
    assert family <= set(front_door.__all__)
    assert all(issubclass(getattr(front_door, name), CoupaError) for name in family)


def test_a_name_that_is_not_there_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'CoupaClinet'"):
        front_door.CoupaClinet  # noqa: B018


def test_importing_the_package_and_its_config_and_errors_loads_no_http_library():
    code = (
        "import sys, json\n"
        "import airflow_provider_coupa_ihr.client as c\n"
        "from airflow_provider_coupa_ihr.client import ClientConfig, CoupaError, RetryPolicy\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('requests', 'httpx'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
