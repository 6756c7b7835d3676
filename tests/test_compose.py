"""docker-compose.yml checked against the code, without a Docker engine.

The file is parsed with PyYAML (anchors and `<<` merges resolved) and compared with what the code
really reads: `vru.config.ENV_VARS`, Airflow's own configuration description and CLI parser, the
`vru` CLI, `vru.airflow_local.POOLS`/`COMPONENTS`, the DAGs' connection id, the lock file and the
Makefile. Airflow is imported in a subprocess (its configuration is process-global), once.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from vru.airflow_local import COMPONENTS, POOLS
from vru.config import DEFAULT_KNIFE_CRIME_URL, DEFAULT_POLICE_API_URL, ENV_VARS

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"

DATABASES = ("warehouse", "airflow-db")
INIT = "airflow-init"
# long-running Airflow service -> the `airflow` component it runs
AIRFLOW_SERVICES = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
}
SERVICES = (*DATABASES, INIT, *AIRFLOW_SERVICES)

# Host folder -> the variable whose value must be the folder's mount point in the containers.
MOUNTS = {
    "./dags": "AIRFLOW__CORE__DAGS_FOLDER",
    "./dbt_project": "VRU_DBT_PROJECT_DIR",
    "./expectations": "VRU_EXPECTATIONS_DIR",
}

# Variables other than VRU_*, AIRFLOW__* and AIRFLOW_CONN_* set for the Airflow services, with the
# installed packages whose code reads each one (searched for the name below).
THIRD_PARTY_ENV: dict[str, tuple[str, ...]] = {
    "DO_NOT_TRACK": ("cosmos", "dbt"),
    "SCARF_NO_ANALYTICS": ("cosmos",),
    "DBT_SEND_ANONYMOUS_USAGE_STATS": ("dbt",),
    "PYTHONUNBUFFERED": (),  # read by the Python interpreter itself
}

# ${NAME}, ${NAME:-default}, ${NAME:?message}, $NAME; `$$` is a literal dollar (compose escaping).
_INTERPOLATION = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?+])?(?P<arg>[^}]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)
_REQUIRED_ONLY = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*:\?[^}]+\}")
_URL_WITH_PASSWORD = re.compile(
    r"[A-Za-z][A-Za-z0-9+.-]*://[^\s/@:]*:(?P<password>\$\{[^}]*\}|[^\s@/]*)@"
)
_SENSITIVE_WORDS = {"PASSWORD", "PASSWD", "SECRET", "KEY", "TOKEN", "CREDENTIALS"}
# names of files, paths or commands, not secrets (e.g. ..._PASSWORDS_FILE)
_NOT_A_SECRET_SUFFIXES = ("_FILE", "_PATH", "_DIR", "_NAME", "_CMD")


# --------------------------------------------------------------------------------------------
# Reading the files
# --------------------------------------------------------------------------------------------


@cache
def compose() -> dict[str, Any]:
    assert COMPOSE_FILE.exists(), f"{COMPOSE_FILE} is missing"
    data = yaml.safe_load(COMPOSE_FILE.read_text())  # resolves anchors and << merges
    assert isinstance(data, dict), "docker-compose.yml is not a YAML mapping"
    return data


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def env(service: str) -> dict[str, Any]:
    environment = services()[service].get("environment") or {}
    assert isinstance(environment, dict), (
        f"{service}: write `environment` as a mapping (KEY: value), not a list, so it can be checked"
    )
    return environment


def airflow_image_services() -> list[str]:
    return [INIT, *AIRFLOW_SERVICES]


def strings(node: Any, where: str = "") -> list[tuple[str, str]]:
    """Every string value in the document, with where it is."""
    if isinstance(node, str):
        return [(where, node)]
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in strings(v, f"{where}.{k}" if where else str(k))]
    if isinstance(node, list):
        return [s for i, v in enumerate(node) for s in strings(v, f"{where}[{i}]")]
    return []


def variables(text: str) -> list[re.Match[str]]:
    return list(_INTERPOLATION.finditer(text.replace("$$", "")))


def interpolate(text: str, values: dict[str, str] | None = None) -> str:
    """Compose's interpolation with `values` (defaults apply to what is missing or empty)."""
    values = values or {}

    def one(m: re.Match[str]) -> str:
        name = m["braced"] or m["bare"]
        value = values.get(name, "")
        if m["op"] in (":-", "-") and not value:
            return m["arg"]
        return value

    return "\0".join(_INTERPOLATION.sub(one, part) for part in text.split("$$")).replace("\0", "$")


def resolved(text: str) -> str:
    """`text` with every variable set to a placeholder (defaults still apply to unset ones)."""
    return interpolate(text, {m["braced"] or m["bare"]: "placeholder" for m in variables(text)
                              if m["op"] not in (":-", "-")})


def env_example() -> dict[str, str]:
    assert ENV_EXAMPLE.exists(), f"{ENV_EXAMPLE} is missing"
    entries: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f".env.example: `{line}` is not NAME=value"
            entries[name.strip()] = value.strip()
    return entries


def bind_mounts(service: str) -> dict[str, tuple[str, str]]:
    """container path -> (source, mode) of the service's short-syntax volumes."""
    mounts = {}
    for volume in services()[service].get("volumes") or []:
        assert isinstance(volume, str), f"{service}: use the short volume syntax SRC:DST[:MODE]"
        source, target, *mode = volume.split(":")
        mounts[target] = (source, mode[0] if mode else "rw")
    return mounts


def command_argv(service: str) -> list[str]:
    command = services()[service].get("command")
    assert command, f"{service}: no command"
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


def init_script() -> str:
    argv = command_argv(INIT)
    assert argv[:2] == ["bash", "-c"] and len(argv) == 3, (
        f"{INIT}: expected `command: [bash, -c, <script>]`, got {argv}"
    )
    return interpolate(argv[2])


def script_commands(program: str) -> list[list[str]]:
    """The init script's lines that run `program`, split like the shell would."""
    lines = init_script().splitlines()
    return [shlex.split(line) for line in lines if line.strip().startswith(f"{program} ")]


def airflow_commands() -> dict[str, list[str]]:
    """Every `airflow` invocation in the file (commands and healthchecks), as CLI arguments."""
    found: dict[str, list[str]] = {}
    for service in AIRFLOW_SERVICES:
        argv = command_argv(service)
        found[f"{service} command"] = argv[1:] if argv[0] == "airflow" else argv
        test = services()[service].get("healthcheck", {}).get("test") or []
        if isinstance(test, list) and "airflow" in test:
            found[f"{service} healthcheck"] = test[test.index("airflow") + 1:]
        elif isinstance(test, list) and test[:1] == ["CMD-SHELL"] and "airflow " in test[1]:
            found[f"{service} healthcheck"] = shlex.split(interpolate(test[1]))[1:]
    for i, argv in enumerate(script_commands("airflow")):
        found[f"{INIT} script line {i + 1}"] = argv[1:]
    return found


def airflow_options() -> dict[str, str]:
    """`section.key` of every AIRFLOW__SECTION__KEY set anywhere, with the variable's name."""
    options = {}
    for service in services():
        for name in env(service):
            if name.startswith("AIRFLOW__"):
                parts = name.split("__")
                assert len(parts) == 3 and all(parts), f"{service}: {name} is not AIRFLOW__SECTION__KEY"
                options[f"{parts[1].lower()}.{parts[2].lower()}"] = name
    return options


# --------------------------------------------------------------------------------------------
# Airflow itself, asked once in a clean subprocess
# --------------------------------------------------------------------------------------------

_PROBE = r"""
import contextlib, io, json, sys
request = json.loads(sys.argv[1])
from airflow.configuration import conf

description = conf.configuration_description
replaced = {f"{old[0]}.{old[1]}": f"{new[0]}.{new[1]}" for new, old in conf.deprecated_options.items()}
options = {}
for key in request["options"]:
    section, option = key.split(".", 1)
    spec = description.get(section, {}).get("options", {}).get(option)
    options[key] = {
        "declared": spec is not None,
        "sensitive": bool(spec and spec.get("sensitive")),
        "replaced_by": replaced.get(key),
    }
from airflow.cli.cli_parser import get_parser

parser = get_parser()
commands = {}
for label, argv in request["commands"].items():
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            parser.parse_args(argv)
        commands[label] = None
    except SystemExit:
        lines = [l for l in err.getvalue().splitlines() if l.strip()]
        commands[label] = lines[-1] if lines else "rejected by the airflow CLI parser"
with open(sys.argv[2], "w") as out:
    json.dump({"options": options, "commands": commands}, out)
"""


@pytest.fixture(scope="module")
def airflow_facts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("airflow_home")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
    clean.update(AIRFLOW_HOME=str(home), DO_NOT_TRACK="1", PYTHONWARNINGS="ignore")
    out = home / "facts.json"
    request = {"options": sorted(airflow_options()), "commands": airflow_commands()}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(request), str(out)],
        env=clean, capture_output=True, text=True, timeout=120, cwd=home,
    )
    assert done.returncode == 0 and out.exists(), f"asking Airflow failed:\n{done.stderr[-3000:]}"
    return dict(json.loads(out.read_text()))


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------


def test_compose_spec_shape() -> None:
    assert "version" not in compose(), "drop the obsolete top-level `version:` key (compose spec)"
    missing = [s for s in SERVICES if s not in services()]
    assert not missing, f"services missing from docker-compose.yml: {missing}"


def test_every_service_has_a_healthcheck_except_the_one_shot_init() -> None:
    for name, service in services().items():
        if name == INIT:
            continue
        check = service.get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name}: no healthcheck"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), f"{name}: healthcheck test must start CMD/CMD-SHELL"
    assert "healthcheck" not in services()[INIT], f"{INIT} runs once; its exit code is its health"
    assert services()[INIT].get("restart") == "no", f"{INIT} must not restart (restart: \"no\")"


def test_services_wait_for_what_they_need() -> None:
    for name in airflow_image_services():
        depends = services()[name].get("depends_on") or {}
        for database in DATABASES:
            assert depends.get(database, {}).get("condition") == "service_healthy", (
                f"{name}: must depend on {database} with condition service_healthy"
            )
    for name in AIRFLOW_SERVICES:
        condition = (services()[name].get("depends_on") or {}).get(INIT, {}).get("condition")
        assert condition == "service_completed_successfully", (
            f"{name}: must start after {INIT} completed successfully (the pool, schema and dbt "
            f"manifest exist only then), got {condition!r}"
        )


def _pinned(image: str) -> bool:
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and bool(tag) and tag != "latest"


def test_images_are_pinned() -> None:
    for name, service in services().items():
        image = service.get("image")
        assert image or service.get("build"), f"{name}: neither image nor build"
        if image:
            assert _pinned(image), f"{name}: image {image!r} is not pinned to a tag (no :latest, no bare)"
        dockerfile = (service.get("build") or {}).get("dockerfile_inline", "")
        for line in dockerfile.splitlines():
            if line.strip().upper().startswith("FROM "):
                base = line.split()[1]
                assert _pinned(base), f"{name}: base image {base!r} is not pinned to a tag"


def test_airflow_image_matches_the_lock_and_installs_it() -> None:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    locked = {p["name"]: p["version"] for p in lock["package"] if "version" in p}
    uv_pin = re.search(r"^UV_VERSION\s*:?=\s*(\S+)", (ROOT / "Makefile").read_text(), re.M)
    assert uv_pin, "Makefile: UV_VERSION not found"
    for name in airflow_image_services():
        build = services()[name].get("build") or {}
        dockerfile = interpolate(build.get("dockerfile_inline", ""))
        assert dockerfile, f"{name}: expected build.dockerfile_inline (the project image)"
        base = re.search(r"^FROM\s+apache/airflow:(\d+\.\d+\.\d+)-python(\d+\.\d+)", dockerfile, re.M)
        assert base, f"{name}: the image must start FROM apache/airflow:<version>-python<x.y>"
        assert base[1] == locked["apache-airflow"], (
            f"{name}: base image Airflow {base[1]}, uv.lock locks apache-airflow {locked['apache-airflow']}"
        )
        assert f"python{base[2]}" in dockerfile or f"--python {base[2]}" in dockerfile, (
            f"{name}: install with the image's Python {base[2]}"
        )
        for needed in ("pyproject.toml", "uv.lock", "plugins"):
            assert re.search(rf"^COPY\b.*\b{re.escape(needed)}\b", dockerfile, re.M), (
                f"{name}: the image must COPY {needed}"
            )
        assert re.search(r"uv sync\b.*--frozen", dockerfile), (
            f"{name}: install with `uv sync --frozen` so the containers run the locked stack"
        )
        assert f"uv=={uv_pin[1]}" in dockerfile, f"{name}: install uv=={uv_pin[1]} (the Makefile's pin)"


def test_vru_variables_are_the_ones_the_code_reads() -> None:
    for service in airflow_image_services():
        for name in env(service):
            if name.startswith("VRU_"):
                assert name in ENV_VARS, (
                    f"{service}: {name} is not read by the product (not in vru.config.ENV_VARS: "
                    f"{sorted(ENV_VARS)})"
                )
    for service in services():
        for name, value in env(service).items():
            assert isinstance(value, (str, int)) and not isinstance(value, bool), (
                f"{service}: {name} must be a string (quote it): compose rejects booleans"
            )


def test_the_airflow_services_are_configured_alike() -> None:
    base = env(INIT)
    for name in AIRFLOW_SERVICES:
        extra = set(env(name)) - set(base)
        assert not {k: env(name)[k] for k in base if env(name).get(k) != base[k]}, (
            f"{name}: environment differs from the shared x-airflow-common one"
        )
        assert all(k.startswith("AIRFLOW__") for k in extra), f"{name}: unexpected extra variables {extra}"
    for required in ("VRU_HOME", "VRU_WAREHOUSE_URL", "VRU_POLICE_API_URL", "VRU_DBT_PROJECT_DIR",
                     "VRU_EXPECTATIONS_DIR", "AIRFLOW_CONN_VRU_WAREHOUSE", "AIRFLOW__CORE__DAGS_FOLDER",
                     "AIRFLOW__CORE__EXECUTOR", "AIRFLOW__CORE__PARALLELISM",
                     "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
                     "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__CORE__FERNET_KEY",
                     "AIRFLOW__CORE__LOAD_EXAMPLES"):
        assert required in base, f"the Airflow services do not set {required}"
    assert base["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert base["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    default_knife = interpolate(base["VRU_KNIFE_CRIME_URL"])
    assert default_knife == DEFAULT_KNIFE_CRIME_URL, (
        f"VRU_KNIFE_CRIME_URL defaults to {default_knife!r}, the code's default is {DEFAULT_KNIFE_CRIME_URL!r}"
    )
    default_api = interpolate(base["VRU_POLICE_API_URL"])
    assert default_api == DEFAULT_POLICE_API_URL, (
        f"VRU_POLICE_API_URL defaults to {default_api!r}, the code's default is {DEFAULT_POLICE_API_URL!r}"
    )


def test_other_variables_are_read_by_installed_code() -> None:
    import importlib.util

    def reads(package: str, name: str) -> bool:
        spec = importlib.util.find_spec(package)
        assert spec and spec.submodule_search_locations, f"package {package} is not installed"
        return any(name in path.read_text(errors="ignore")
                   for folder in spec.submodule_search_locations for path in Path(folder).rglob("*.py"))

    for service in airflow_image_services():
        for name in env(service):
            if name.startswith(("VRU_", "AIRFLOW__", "AIRFLOW_CONN_")):
                continue
            assert name in THIRD_PARTY_ENV, (
                f"{service}: {name} is not a variable any code here is known to read; add it to "
                "THIRD_PARTY_ENV with the package that reads it, or drop it"
            )
            for package in THIRD_PARTY_ENV[name]:
                assert reads(package, name), f"{service}: {name}: the {package} package does not read it"


def test_airflow_options_are_real(airflow_facts: dict[str, Any]) -> None:
    import importlib.util

    def read_by_package(section: str, option: str) -> bool:
        """Options a provider reads with conf.get*(section, option, fallback=...) but does not declare."""
        spec = importlib.util.find_spec(section)
        if not spec or not spec.submodule_search_locations:
            return False
        quoted = rf"""["']{re.escape(section)}["']\s*,\s*["']{re.escape(option)}["']"""
        call = re.compile(rf"conf\.get\w*\(\s*{quoted}")
        return any(call.search(path.read_text(errors="ignore"))
                   for folder in spec.submodule_search_locations for path in Path(folder).rglob("*.py"))

    for key, variable in airflow_options().items():
        fact = airflow_facts["options"][key]
        assert not fact["replaced_by"], f"{variable}: deprecated, Airflow now reads [{fact['replaced_by']}]"
        section, option = key.split(".", 1)
        assert fact["declared"] or read_by_package(section, option), (
            f"{variable}: [{section}] {option} is not an option of this Airflow or of an installed provider"
        )


def test_airflow_commands_are_real(airflow_facts: dict[str, Any]) -> None:
    for label, error in airflow_facts["commands"].items():
        assert error is None, f"{label}: `airflow {' '.join(airflow_commands()[label])}` is wrong: {error}"
    components = {argv[0] for label, argv in airflow_commands().items() if label.endswith(" command")}
    assert components == set(COMPONENTS), (
        f"the long-running services run {sorted(components)}; vru.airflow_local.COMPONENTS is "
        f"{sorted(COMPONENTS)}"
    )
    for service, component in AIRFLOW_SERVICES.items():
        runs = airflow_commands()[f"{service} command"][0]
        assert runs == component, f"{service} must run `airflow {component}`, not `airflow {runs}`"


def test_init_prepares_airflow_the_warehouse_and_dbt() -> None:
    script = init_script()
    first = script.splitlines()[0].strip()
    assert first == "set -euo pipefail", f"{INIT}: start with set -euo pipefail (a failure stops it)"
    assert ["airflow", "db", "migrate"] in script_commands("airflow"), f"{INIT}: no `airflow db migrate`"
    # `vru warehouse start` only reports an external warehouse (VRU_WAREHOUSE_URL set): it applies nothing
    assert "vru warehouse start" not in script, f"{INIT}: `vru warehouse start` does not apply the schema"
    schema = [line for line in script.splitlines() if "apply_schema" in line]
    assert schema, f"{INIT}: the warehouse schema is never applied (vru.warehouse.apply_schema)"
    code = shlex.split(schema[0])
    assert code[:2] == ["python", "-c"], f"{INIT}: apply the schema with python -c, got {schema[0]}"
    compile(code[2], "<init>", "exec")
    import vru.warehouse

    for attribute in re.findall(r"warehouse\.(\w+)", code[2]):
        assert hasattr(vru.warehouse, attribute), f"{INIT}: vru.warehouse has no {attribute}"
    vru_lines = script_commands("vru")
    assert ["vru", "dbt-parse"] in vru_lines, f"{INIT}: the dbt manifest is never compiled (vru dbt-parse)"
    for argv in vru_lines:
        done = subprocess.run([sys.executable, "-m", "vru.cli", *argv[1:], "--help"],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"{INIT}: `{' '.join(argv)}` is not a vru command: {done.stderr[-500:]}"


def test_the_pool_matches_the_code() -> None:
    created = {argv[3]: argv[4:] for argv in script_commands("airflow") if argv[1:3] == ["pools", "set"]}
    assert set(created) == set(POOLS), (
        f"{INIT} creates pools {sorted(created)}, vru.airflow_local.POOLS has {sorted(POOLS)}"
    )
    for name, (slots, description) in POOLS.items():
        assert created[name][:1] == [str(slots)], f"pool {name}: {created[name][:1]} slots, POOLS: {slots}"
        assert created[name][1:2] == [description], f"pool {name}: description differs from POOLS"


def test_mounts_match_the_variables() -> None:
    named = set(compose().get("volumes") or {})
    for service in airflow_image_services():
        mounts = bind_mounts(service)
        variables_ = env(service)
        for host, variable in MOUNTS.items():
            assert (ROOT / host).is_dir(), f"{host} does not exist in the repository"
            target = interpolate(str(variables_[variable]))
            assert target in mounts and mounts[target][0] == host, (
                f"{service}: {variable}={target} but {host} is not mounted there (mounts: {mounts})"
            )
        home = interpolate(str(variables_["VRU_HOME"]))
        assert home in mounts and mounts[home][0] in named, (
            f"{service}: VRU_HOME={home} must be a named volume declared under top-level volumes"
        )
        dbt_target = interpolate(str(variables_["VRU_DBT_PROJECT_DIR"]))
        assert mounts[dbt_target][1] != "ro", (
            f"{service}: the dbt project is read-only, but {INIT} writes target/manifest.json there"
        )
        for source, _mode in mounts.values():
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{service}: mounted host path {source} does not exist"
            else:
                assert source in named, f"{service}: volume {source} is not declared under top-level volumes"
        log_folder = variables_.get("AIRFLOW__LOGGING__BASE_LOG_FOLDER")
        if log_folder:
            assert interpolate(log_folder).startswith(home + "/"), (
                f"{service}: task logs must be on the shared VRU_HOME volume for the API server to read"
            )


def test_connections_and_urls_point_at_the_services() -> None:
    base = env(INIT)
    assert base["AIRFLOW_CONN_VRU_WAREHOUSE"] == base["VRU_WAREHOUSE_URL"], (
        "AIRFLOW_CONN_VRU_WAREHOUSE must be the same URL as VRU_WAREHOUSE_URL"
    )
    conn_id = re.compile(r"conn_id=[\"'](\w+)[\"']")
    used = {m for dag in (ROOT / "dags").glob("*.py") for m in conn_id.findall(dag.read_text())}
    assert used, "no conn_id found in dags/*.py"
    for conn in used:
        assert f"AIRFLOW_CONN_{conn.upper()}" in base, f"the DAGs use connection {conn}, not set in compose"
    for variable, database in (("VRU_WAREHOUSE_URL", "warehouse"),
                               ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "airflow-db")):
        url = urlsplit(resolved(base[variable]))
        db_env = env(database)
        assert url.hostname == database, f"{variable} must point at the {database} service: {url.hostname}"
        assert url.username == db_env["POSTGRES_USER"], f"{variable}: user is not {database}'s POSTGRES_USER"
        assert url.path.lstrip("/") == db_env["POSTGRES_DB"], f"{variable}: database differs from POSTGRES_DB"
        url_vars = {m["braced"] for m in variables(base[variable])}
        db_vars = {m["braced"] for m in variables(db_env["POSTGRES_PASSWORD"])}
        assert url_vars == db_vars, f"{variable}: password is not {database}'s POSTGRES_PASSWORD variable"
    execution = urlsplit(resolved(base["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]))
    ports = [str(p).rsplit(":", 1)[-1] for p in services()["airflow-apiserver"].get("ports", [])]
    assert execution.hostname == "airflow-apiserver" and str(execution.port) in ports, (
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL must reach the airflow-apiserver service on its port"
    )
    assert execution.path == "/execution/", "the execution API lives under /execution/"
    health = services()["airflow-apiserver"]["healthcheck"]["test"]
    assert any("/api/v2/monitor/health" in part for part in health), "check the API server's monitor/health"


def _is_secret_name(name: str) -> bool:
    if name.upper().endswith(_NOT_A_SECRET_SUFFIXES):
        return False
    return bool(_SENSITIVE_WORDS & set(re.split(r"_+", name.upper())))


def test_no_literal_secret(airflow_facts: dict[str, Any]) -> None:
    options = airflow_options()
    sensitive = {variable for key, variable in options.items() if airflow_facts["options"][key]["sensitive"]}
    for service in services():
        for name, value in env(service).items():
            value = str(value)
            if _is_secret_name(name):
                assert _REQUIRED_ONLY.fullmatch(value), (
                    f"{service}: {name} must be `${{NAME:?set NAME in .env}}`, not a literal or a default"
                )
            elif name in sensitive:  # e.g. the metadata database URL: Airflow marks it sensitive
                assert _URL_WITH_PASSWORD.search(value) or _REQUIRED_ONLY.fullmatch(value), (
                    f"{service}: {name} is sensitive in Airflow: interpolate it or its password"
                )
    for where, text in strings(compose()):
        for m in _URL_WITH_PASSWORD.finditer(text):
            assert _REQUIRED_ONLY.fullmatch(m["password"]), (
                f"{where}: the URL's password must be `${{NAME:?...}}` interpolation, not {m['password']!r}"
            )


def test_env_example_names_every_variable() -> None:
    example = env_example()
    used: dict[str, str] = {}
    for where, text in strings(compose()):
        for m in variables(text):
            used.setdefault(m["braced"] or m["bare"], where)
    missing = {name: where for name, where in used.items() if name not in example}
    assert not missing, f".env.example does not name these variables used in docker-compose.yml: {missing}"
    unused = sorted(set(example) - set(used))
    assert not unused, f".env.example names variables docker-compose.yml does not use: {unused}"
    assert not {name: v for name, v in example.items() if v}, ".env.example must hold no values"
    lines = ENV_EXAMPLE.read_text().splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^[A-Za-z_]\w*=", line):
            name = line.split("=")[0]
            assert i > 0 and lines[i - 1].startswith("#"), f".env.example: explain {name} in a comment above"
