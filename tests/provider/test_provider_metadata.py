"""What Airflow learns about the provider, checked on the installed Airflow line (2.11 and 3.x alike).

- ``get_provider_info()`` fits the installed Airflow's ``provider_info.schema.json``, through the very validator
  ``ProvidersManager`` uses at discovery (a dict it refuses makes the whole provider invisible);
- every module and class the dict names imports and is the kind of thing its section promises, found
  generically (any dotted path anywhere in the dict, outside the free-text sections), and every concrete
  operator, sensor, trigger, hook and notifier the package defines is listed, with every extra link its
  operators carry (Airflow 2 refuses to deserialize a task whose link class is not registered);
- the connection form Airflow builds from it: labels, which fields are secret, and no default value that
  Airflow's masking would turn into ``***`` in the form;
- ``airflow providers list|hooks|widgets`` in subprocesses of the venv's own ``airflow`` with a throwaway home,
  and the links, triggers, notifiers and plugins the providers manager registers;
- importing the package's operator, sensor, trigger, hook and notifier modules emits no deprecation warning.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import pkgutil
import re
import subprocess
import sys
import textwrap
import time
import types
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import pytest

import airflow_provider_coupa_ihr
from airflow_provider_coupa_ihr import __version__
from airflow_provider_coupa_ihr.get_provider_info import PACKAGE_NAME, get_provider_info
from airflow_provider_coupa_ihr.hooks.connection_fields import CONN_FIELDS, CONN_TYPE

AIRFLOW_BIN = Path(sys.executable).parent / "airflow"
PACKAGE = airflow_provider_coupa_ihr.__name__
AIRFLOW_VERSION: str = importlib.import_module("airflow").__version__
AIRFLOW_3 = int(AIRFLOW_VERSION.split(".")[0]) >= 3

#: Sections whose strings are text for people or settings (descriptions, labels, config defaults), not code.
TEXT_SECTIONS = frozenset({"config", "conn-fields", "ui-field-behaviour", "integrations", "description", "name"})
#: Sections of the provider info that name code (what the generic walk must find at least one path in).
CODE_SECTIONS = frozenset(
    {
        "hooks",
        "operators",
        "sensors",
        "triggers",
        "transfers",
        "extra-links",
        "notifications",
        "plugins",
        "connection-types",
        "hook-class-names",
        "executors",
        "secrets-backends",
        "logging",
        "auth-backends",
        "auth-managers",
        "task-decorators",
        "filesystems",
        "asset-uris",
        "dataset-uris",
        "dialects",
        "bundles",
        "queues",
        "db-managers",
        "email-backends",
        "cli",
    }
)
DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")


class Named(NamedTuple):
    where: str  # e.g. "operators[0].python-modules[2]"
    key: str  # the key the path sits under, e.g. "python-modules"
    path: str


def named_paths(node: Any, where: str = "", key: str = "") -> Iterator[Named]:
    """Every dotted Python path in the provider info, outside the free-text sections."""
    if isinstance(node, dict):
        for k, v in node.items():
            if where == "" and k in TEXT_SECTIONS:
                continue
            if k in ("conn-fields", "ui-field-behaviour"):
                continue
            yield from named_paths(v, f"{where}.{k}" if where else k, k)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from named_paths(v, f"{where}[{i}]", key)
    elif isinstance(node, str) and DOTTED.match(node):
        yield Named(where, key, node)


def resolve(path: str) -> Any:
    """The module ``path`` names, or the attribute of its parent module."""
    try:
        return importlib.import_module(path)
    except ModuleNotFoundError as exc:
        if exc.name != path:
            raise
    module, _, attr = path.rpartition(".")
    return getattr(importlib.import_module(module), attr)


INFO = get_provider_info()
NAMED = list(named_paths(INFO))


def _bases() -> dict[str, type]:
    from airflow.providers.common.compat.sdk import (
        AirflowPlugin,
        BaseHook,
        BaseNotifier,
        BaseOperator,
        BaseOperatorLink,
        BaseSensorOperator,
    )
    from airflow.triggers.base import BaseTrigger

    return {
        "operator": BaseOperator,
        "sensor": BaseSensorOperator,
        "trigger": BaseTrigger,
        "hook": BaseHook,
        "link": BaseOperatorLink,
        "notifier": BaseNotifier,
        "plugin": AirflowPlugin,
    }


def classes_in(module: types.ModuleType, base: type) -> list[type]:
    """The classes ``module`` itself defines that derive from ``base``."""
    return [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, base) and obj.__module__ == module.__name__
    ]


def concrete(cls: type) -> bool:
    """Meant for users: public, not abstract, not a shared base such as ``CoupaBaseOperator``."""
    return not cls.__name__.startswith("_") and "Base" not in cls.__name__ and not inspect.isabstract(cls)


def package_modules(subpackage: str) -> list[types.ModuleType]:
    try:
        package = importlib.import_module(f"{PACKAGE}.{subpackage}")
    except ModuleNotFoundError:
        return []
    names = [m.name for m in pkgutil.walk_packages(package.__path__, f"{package.__name__}.")]
    return [importlib.import_module(n) for n in sorted(names)]


def listed_modules(section: str) -> set[str]:
    return {m for entry in INFO.get(section, []) for m in entry.get("python-modules", [])}


# ------------------------------------------------------------------------------------------------ the schema
def test_provider_info_passes_the_validator_airflow_discovers_providers_with() -> None:
    from airflow import providers_manager

    validator = providers_manager._create_provider_info_schema_validator()
    errors = sorted(validator.iter_errors(INFO), key=lambda e: list(e.absolute_path))
    assert not errors, f"Airflow {AIRFLOW_VERSION} would refuse the provider info:\n" + "\n".join(
        f"  at {'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors
    )
    assert INFO["package-name"] == PACKAGE_NAME == "airflow-provider-coupa-ihr"
    assert INFO["versions"][0] == __version__


def test_the_schema_would_notice_a_broken_provider_info() -> None:
    """The validator is live on this line: a dict without its name, or a connection type without its hook class,
    is refused (so the test above is not passing against an empty schema)."""
    from airflow import providers_manager

    validator = providers_manager._create_provider_info_schema_validator()
    assert not validator.is_valid({k: v for k, v in INFO.items() if k != "name"})
    broken = {**INFO, "connection-types": [{"connection-type": CONN_TYPE}]}
    assert not validator.is_valid(broken)


# ------------------------------------------------------------------------------------------------ what it names
def test_the_walk_finds_code_in_every_code_section() -> None:
    sections = {n.where.split(".")[0].split("[")[0] for n in NAMED}
    expected = {k for k in INFO if k in CODE_SECTIONS}
    assert expected <= sections, f"no import path found under {sorted(expected - sections)}"
    assert {"hooks", "operators", "connection-types", "extra-links"} <= sections
    unknown = set(INFO) - CODE_SECTIONS - TEXT_SECTIONS - {"package-name", "versions", "state", "source-date-epoch"}
    assert not unknown, f"provider info sections this test does not know how to check: {sorted(unknown)}"


@pytest.mark.parametrize("named", NAMED, ids=[f"{n.where}={n.path}" for n in NAMED])
def test_every_named_module_and_class_imports_as_what_its_section_promises(named: Named) -> None:
    assert named.path.startswith(f"{PACKAGE}."), f"{named.where} names {named.path}, outside {PACKAGE}"
    try:
        obj = resolve(named.path)
    except Exception as exc:
        pytest.fail(f"{named.where}: {named.path} does not import: {type(exc).__name__}: {exc}")
    bases = _bases()
    section = named.where.split(".")[0].split("[")[0]
    if named.key in ("python-modules", "python-module"):
        assert isinstance(obj, types.ModuleType), f"{named.where}: {named.path} is not a module"
        kind = {"operators": "operator", "sensors": "sensor", "triggers": "trigger", "hooks": "hook"}.get(section)
        if kind is not None:
            assert classes_in(obj, bases[kind]), f"{named.where}: {named.path} defines no {bases[kind].__name__}"
        return
    assert inspect.isclass(obj), f"{named.where}: {named.path} is not a class"
    kind = {
        "hook-class-name": "hook",
        "hook-class-names": "hook",
        "extra-links": "link",
        "notifications": "notifier",
        "plugin-class": "plugin",
    }.get(named.key)
    if kind == "plugin":  # like Airflow 3's plugins manager, by name: core and the SDK each have an AirflowPlugin
        assert "AirflowPlugin" in [b.__name__ for b in obj.__mro__[1:]], f"{named.path} is not an AirflowPlugin"
    elif kind is not None:
        assert issubclass(obj, bases[kind]), f"{named.where}: {named.path} is not a {bases[kind].__name__}"


@pytest.mark.parametrize(
    ("subpackage", "section", "kind"),
    [
        ("operators", "operators", "operator"),
        ("sensors", "sensors", "sensor"),
        ("triggers", "triggers", "trigger"),
        ("hooks", "hooks", "hook"),
    ],
)
def test_every_module_defining_a_concrete_class_is_listed(subpackage: str, section: str, kind: str) -> None:
    bases = _bases()

    def users_classes(module: types.ModuleType) -> list[type]:
        found = [c for c in classes_in(module, bases[kind]) if concrete(c)]
        if kind == "operator":  # sensors are operators too, but belong under "sensors"
            found = [c for c in found if not issubclass(c, bases["sensor"])]
        return found

    defining = {m.__name__ for m in package_modules(subpackage) if users_classes(m)}
    missing = sorted(defining - listed_modules(section))
    assert not missing, (
        f"modules defining a {bases[kind].__name__} but missing from provider info {section!r}: {missing}"
    )


def test_every_notifier_is_listed() -> None:
    base = _bases()["notifier"]
    defined = {
        f"{m.__name__}.{c.__name__}"
        for m in package_modules("notifications")
        for c in classes_in(m, base)
        if concrete(c)
    }
    missing = sorted(defined - set(INFO.get("notifications", [])))
    assert not missing, f"notifiers missing from provider info 'notifications': {missing}"


def test_every_extra_link_an_operator_carries_is_registered() -> None:
    bases = _bases()
    modules = [importlib.import_module(m) for m in sorted(listed_modules("operators") | listed_modules("sensors"))]
    operators = [c for m in modules for c in classes_in(m, bases["operator"])]
    assert operators
    carried = {
        f"{type(link).__module__}.{type(link).__qualname__}"
        for op in operators
        for link in getattr(op, "operator_extra_links", ())
    }
    assert carried, "no operator carries an extra link (the Coupa operators link to Coupa)"
    missing = sorted(carried - set(INFO.get("extra-links", [])))
    assert not missing, f"extra links operators carry but provider info does not register: {missing}"


# ------------------------------------------------------------------------------------------------ the form
def test_the_connection_form_airflow_builds_has_every_field_with_its_label_and_secrecy() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    widgets = {k: v for k, v in manager.connection_form_widgets.items() if k.startswith(f"extra__{CONN_TYPE}__")}
    assert sorted(widgets) == sorted(f"extra__{CONN_TYPE}__{f.name}" for f in CONN_FIELDS)

    def label(field: Any) -> str:
        if isinstance(field, dict):  # Airflow 3.2+: conn-fields, label as the schema's title
            return str(field["schema"]["title"])
        return str(field.args[0])  # 2.11 to 3.1: a WTForms UnboundField, label first

    for f in CONN_FIELDS:
        widget = widgets[f"extra__{CONN_TYPE}__{f.name}"]
        assert label(widget.field) == f.label
        assert widget.is_sensitive is f.secret, f"{f.name}: Airflow reads is_sensitive={widget.is_sensitive}"
    behaviour = manager.field_behaviours[CONN_TYPE]
    assert behaviour["relabeling"] == {
        "host": "Coupa instance URL",
        "login": "OAuth client ID",
        "password": "OAuth client secret",
    }
    assert set(behaviour["hidden_fields"]) == {"port", "schema"}


def _should_hide_value_for_key() -> Any:
    try:  # 3.x: what the API server masks hook metadata and connection extras with
        return importlib.import_module("airflow._shared.secrets_masker").should_hide_value_for_key
    except ImportError:
        return importlib.import_module("airflow.utils.log.secrets_masker").should_hide_value_for_key


def test_no_form_default_is_masked_by_airflow() -> None:
    """Airflow masks the value of any extra whose name looks secret (``token``, ``proxy``, ...), defaults in the
    add form included: Airflow 3.3 showed the default token path as ``***`` and saved it so."""
    hide = _should_hide_value_for_key()
    fields = INFO["connection-types"][0]["conn-fields"]
    masked = sorted(n for n, f in fields.items() if "default" in f["schema"] and hide(n))
    assert not masked, f"Airflow would show these defaults as '***' and save them so: {masked}"
    assert {"token_path", "proxy", "api_key"} <= {n for n in fields if hide(n)}  # the masking is live here


# ------------------------------------------------------------------------------------------------ the airflow CLI
class Cli(NamedTuple):
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def json(self) -> Any:
        """The JSON document in stdout (Airflow may print log lines before it)."""
        decoder = json.JSONDecoder()
        for match in re.finditer(r"^[\[{]", self.stdout, re.MULTILINE):
            try:
                return decoder.raw_decode(self.stdout, match.start())[0]
            except ValueError:
                continue
        raise AssertionError(f"no JSON in the output of airflow {' '.join(self.args)}:\n{self.stdout[-3000:]}")


def _cli_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "AIRFLOW__"))}
    env.update(AIRFLOW_HOME=str(home), AIRFLOW__CORE__LOAD_EXAMPLES="False", PYTHONWARNINGS="ignore")
    return env


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Cli]:
    """``airflow providers list|hooks|widgets``, run two at a time (3 to 6 s each)."""
    home = tmp_path_factory.mktemp("airflow-cli-home")

    def run(sub: str) -> Cli:
        args = ("providers", sub, "--output", "json")
        started = time.monotonic()
        result = subprocess.run(
            [str(AIRFLOW_BIN), *args], env=_cli_env(home), capture_output=True, text=True, timeout=180, check=False
        )
        return Cli(args, result.returncode, result.stdout, result.stderr, time.monotonic() - started)

    first = run("list")  # writes airflow.cfg into the home; the others then only read it
    with ThreadPoolExecutor(max_workers=2) as pool:
        rest = list(pool.map(run, ["hooks", "widgets"]))
    return {c.args[1]: c for c in [first, *rest]}


def _ok(c: Cli) -> Cli:
    assert c.returncode == 0, f"airflow {' '.join(c.args)} exited {c.returncode}:\n{c.stderr[-3000:]}"
    troubles = [
        line
        for line in c.stderr.splitlines()
        if PACKAGE in line or (CONN_TYPE in line.lower() and re.search(r"(?i)error|exception|fail|warn", line))
    ]
    assert not troubles, f"airflow {' '.join(c.args)} complained about the provider:\n" + "\n".join(troubles)
    return c


def test_airflow_providers_list_shows_the_provider(cli: dict[str, Cli]) -> None:
    providers = {p["package_name"]: p for p in _ok(cli["list"]).json()}
    assert PACKAGE_NAME in providers, f"on Airflow {AIRFLOW_VERSION}, providers list shows {sorted(providers)}"
    assert providers[PACKAGE_NAME]["version"] == __version__


def test_airflow_providers_hooks_shows_the_coupa_connection_type(cli: dict[str, Cli]) -> None:
    hooks = [h for h in _ok(cli["hooks"]).json() if h["connection_type"] == CONN_TYPE]
    assert hooks, f"no '{CONN_TYPE}' connection type on Airflow {AIRFLOW_VERSION}"
    (hook,) = hooks
    assert hook["class"] == INFO["connection-types"][0]["hook-class-name"]
    assert hook["package_name"] == PACKAGE_NAME
    assert hook["hook_name"] == "Coupa"


def test_airflow_providers_widgets_shows_every_extra_field(cli: dict[str, Cli]) -> None:
    widgets = {
        w["connection_parameter_name"]: w for w in _ok(cli["widgets"]).json() if w["package_name"] == PACKAGE_NAME
    }
    assert sorted(widgets) == sorted(f"extra__{CONN_TYPE}__{f.name}" for f in CONN_FIELDS)
    for f in CONN_FIELDS:
        field_type = widgets[f"extra__{CONN_TYPE}__{f.name}"]["field_type"]
        if AIRFLOW_3:  # conn-fields: the JSON schema type
            assert field_type == [f.kind, "null"], f.name
        else:  # WTForms field classes
            assert field_type == ("PasswordField" if f.secret else "StringField"), f.name


def test_providers_manager_registers_the_links_triggers_notifiers_and_plugins_named() -> None:
    """What ``airflow providers behaviours|links|triggers|notifications`` print, read from the same manager in
    this process (each CLI call costs 3 to 6 s of start-up)."""
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert CONN_TYPE in manager.field_behaviours
    assert set(INFO["extra-links"]) <= set(manager.extra_links_class_names)
    triggers = {t.trigger_class_name for t in manager.trigger if t.package_name == PACKAGE_NAME}
    assert triggers == listed_modules("triggers")
    assert set(INFO.get("notifications", [])) <= set(manager.notification)
    plugins = {(p.name, p.plugin_class) for p in manager.plugins if p.provider_name == PACKAGE_NAME}
    assert plugins == {(p["name"], p["plugin-class"]) for p in INFO.get("plugins", [])}


# ------------------------------------------------------------------------------------------------ deprecations
WARNINGS_PROBE = textwrap.dedent(
    """
    import importlib, json, sys, warnings
    import airflow  # Airflow's own import-time warnings are not ours
    caught = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for name in sys.argv[1:]:
            importlib.import_module(name)
    kinds = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)
    print(json.dumps([
        {"category": w.category.__name__, "where": f"{w.filename}:{w.lineno}", "message": str(w.message)}
        for w in caught if issubclass(w.category, kinds)
    ]))
    """
)


def test_importing_the_operator_modules_emits_no_deprecation_warning(tmp_path: Path) -> None:
    """In a fresh interpreter (here the modules are imported already). Airflow 2.11 warns once per process about
    its own metrics setting whatever is imported; the setting it asks for is set, so any warning left is ours."""
    modules = sorted(
        {
            m.__name__
            for sub in ("operators", "sensors", "triggers", "hooks", "notifications")
            for m in package_modules(sub)
        }
        | {n.path for n in NAMED if n.key in ("python-modules", "python-module")}
    )
    assert f"{PACKAGE}.operators.records" in modules
    env = _cli_env(tmp_path)
    env.pop("PYTHONWARNINGS")
    env["AIRFLOW__METRICS__TIMER_UNIT_CONSISTENCY"] = "True"
    result = subprocess.run(
        [sys.executable, "-c", WARNINGS_PROBE, *modules],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    warned = json.loads(result.stdout.strip().splitlines()[-1])
    assert not warned, f"importing {len(modules)} modules on Airflow {AIRFLOW_VERSION} warned:\n" + "\n".join(
        f"  {w['category']} at {w['where']}: {w['message']}" for w in warned
    )
