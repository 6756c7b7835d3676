"""docker-compose.yml checked against the code, without a Docker engine.

The file is parsed with PyYAML (anchors and `<<` merges resolved) and compared with what the code
really reads: `vru.config.ENV_VARS`, Airflow's own configuration description and CLI parser, the
`vru` CLI, `vru.airflow_local.POOLS`/`COMPONENTS`/`celery_env()`, the BI login the warehouse code
creates, the DAGs' connection id, the lock file and the Makefile. Airflow is imported in a
subprocess (its configuration is process-global), once. Values are interpolated the way compose
does it, from test values filled in like an operator fills `.env` from `.env.example`.
"""

from __future__ import annotations

import hashlib
import inspect
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
from vru.airflow_local import COMPONENTS, POOLS, celery_env
from vru.config import DEFAULT_KNIFE_CRIME_URL, DEFAULT_POLICE_API_URL, ENV_VARS, Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"

DATABASES = ("warehouse", "airflow-db")
BROKER = "redis"
INIT = "airflow-init"
# long-running Airflow service -> the `airflow` component it runs
AIRFLOW_SERVICES = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
}
# the Celery workers (`airflow celery worker`), scaled with --scale airflow-worker=N
WORKER = "airflow-worker"
SUPERSET_DB = "superset-db"
SUPERSET_INIT = "superset-init"
SUPERSET = "superset"
ONE_SHOTS = (INIT, SUPERSET_INIT)
SERVICES = (*DATABASES, SUPERSET_DB, BROKER, INIT, *AIRFLOW_SERVICES, WORKER, SUPERSET_INIT, SUPERSET)

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
    "DUMB_INIT_SETSID": (),  # read by dumb-init, the Airflow image's entrypoint (warm shutdown)
}

# What an Airflow service may set on top of the shared x-airflow-common environment.
EXTRA_ENV: dict[str, set[str]] = {
    # only the init job creates the BI login and applies the schema as the warehouse's superuser
    INIT: {"VRU_BI_USER", "VRU_BI_PASSWORD", "VRU_WAREHOUSE_ADMIN_URL", "VRU_BI_STATEMENT_TIMEOUT",
           "VRU_BI_IDLE_IN_TRANSACTION_TIMEOUT", "VRU_SCHEMA_LOCK_TIMEOUT"},
    "airflow-scheduler": {"AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"},
    WORKER: {"DUMB_INIT_SETSID"},
}

# Variables of the services not built from the Airflow image: each is documented by its image.
IMAGE_ENV = {
    "POSTGRES_USER": "postgres image: the superuser it creates on first start",
    "POSTGRES_DB": "postgres image: the database it creates on first start",
    "POSTGRES_PASSWORD": "postgres image: the superuser's password",
    "REDISCLI_AUTH": "redis-cli: the password it authenticates with",
    "SUPERSET_SECRET_KEY": "superset/config.py: SECRET_KEY",
    "SUPERSET__SQLALCHEMY_DATABASE_URI": "superset/config.py, and the config file the image writes",
    "SCARF_ANALYTICS": "Superset docker-compose docs: False disables the Scarf telemetry pixel",
}

# ${NAME}, ${NAME:-default}, ${NAME:?message}, $NAME; `$$` is a literal dollar (compose escaping).
_INTERPOLATION = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?+])?(?P<arg>[^}]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)
_REQUIRED_ONLY = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*:\?[^}]+\}")
_URL_WITH_PASSWORD = re.compile(
    r"[A-Za-z][A-Za-z0-9+.-]*://(?:\$\{[^}]*\}|[^\s/@:]*):(?P<password>\$\{[^}]*\}|[^\s@/]*)@"
)
# a password given on a command line: `--password X`, `--requirepass X`
_PASSWORD_OPTION = re.compile(r"--(?:password|requirepass)\b")
_SENSITIVE_WORDS = {"PASSWORD", "PASSWD", "SECRET", "KEY", "TOKEN", "CREDENTIALS", "AUTH"}
# names of files, paths, commands or classes, not secrets (e.g. ..._PASSWORDS_FILE, ..._AUTH_MANAGER)
_NOT_A_SECRET_SUFFIXES = ("_FILE", "_PATH", "_DIR", "_NAME", "_CMD", "_MANAGER")


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


def common_env() -> dict[str, Any]:
    """The environment every Airflow service shares (x-airflow-common)."""
    return compose()["x-airflow-common"]["environment"]


def airflow_image_services() -> list[str]:
    return [INIT, *AIRFLOW_SERVICES, WORKER]


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


@cache
def env_values() -> dict[str, str]:
    """`.env` as an operator fills it from `.env.example`: every required variable (`${NAME:?...}`)
    set to its own URL-safe hex value, as the comments say to generate them; optional ones empty."""
    required = {m["braced"] for _, text in strings(compose()) for m in variables(text) if m["op"] == ":?"}
    return {name: hashlib.sha256(name.encode()).hexdigest()[:32] if name in required else ""
            for name in env_example()}


def filled(text: str) -> str:
    """`text` as compose interpolates it with `env_values()`."""
    return interpolate(str(text), env_values())


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


def init_script(service: str = INIT, values: dict[str, str] | None = None) -> str:
    argv = command_argv(service)
    assert argv[:2] == ["bash", "-c"] and len(argv) == 3, (
        f"{service}: expected `command: [bash, -c, <script>]`, got {argv}"
    )
    return interpolate(argv[2], values)


def script_commands(program: str, service: str = INIT, values: dict[str, str] | None = None) -> list[list[str]]:
    """The init script's lines that run `program`, split like the shell would, redirections dropped."""
    lines = init_script(service, values).splitlines()
    commands = []
    for line in lines:
        if line.strip().startswith(f"{program} "):
            argv = shlex.split(line)
            redirect = next((i for i, word in enumerate(argv) if re.match(r"^\d?[<>]", word)), len(argv))
            commands.append(argv[:redirect])
    return commands


def airflow_commands() -> dict[str, list[str]]:
    """Every `airflow` invocation in the file (commands and healthchecks), as CLI arguments."""
    found: dict[str, list[str]] = {}
    for service in (*AIRFLOW_SERVICES, WORKER):
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


def celery_apps() -> list[str]:
    """The Celery app (`module.attribute`) each `celery --app X` health check names."""
    return [m for service in services().values()
            for part in (service.get("healthcheck") or {}).get("test") or []
            for m in re.findall(r"--app[ =](\S+)", str(part))]


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
import importlib

apps = {}
for path in request["celery_apps"]:
    module, _, attribute = path.rpartition(".")
    try:
        getattr(importlib.import_module(module), attribute)
        apps[path] = None
    except Exception as error:  # e.g. celery 5.7 removed an import the provider uses
        apps[path] = f"{type(error).__name__}: {error}"
with open(sys.argv[2], "w") as out:
    json.dump({"options": options, "commands": commands, "celery_apps": apps}, out)
"""


@pytest.fixture(scope="module")
def airflow_facts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("airflow_home")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
    clean.update(AIRFLOW_HOME=str(home), DO_NOT_TRACK="1", PYTHONWARNINGS="ignore")
    # the auth manager brings its own commands (`airflow users ...` of the FAB auth manager)
    manager = common_env().get("AIRFLOW__CORE__AUTH_MANAGER")
    if manager:
        clean["AIRFLOW__CORE__AUTH_MANAGER"] = str(manager)
    out = home / "facts.json"
    request = {"options": sorted(airflow_options()), "commands": airflow_commands(), "celery_apps": celery_apps()}
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


def test_every_service_has_a_healthcheck_except_the_one_shot_jobs() -> None:
    for name, service in services().items():
        if name in ONE_SHOTS:
            continue
        check = service.get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name}: no healthcheck"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), f"{name}: healthcheck test must start CMD/CMD-SHELL"
    for name in ONE_SHOTS:
        assert "healthcheck" not in services()[name], f"{name} runs once; its exit code is its health"
        assert services()[name].get("restart") == "no", f"{name} must not restart (restart: \"no\")"


def test_services_wait_for_what_they_need() -> None:
    for name in airflow_image_services():
        depends = services()[name].get("depends_on") or {}
        for needed in (*DATABASES, BROKER):
            assert depends.get(needed, {}).get("condition") == "service_healthy", (
                f"{name}: must depend on {needed} with condition service_healthy"
            )
    for name in (*AIRFLOW_SERVICES, WORKER):
        condition = (services()[name].get("depends_on") or {}).get(INIT, {}).get("condition")
        assert condition == "service_completed_successfully", (
            f"{name}: must start after {INIT} completed successfully (the pool, schema and dbt "
            f"manifest exist only then), got {condition!r}"
        )
    worker = services()[WORKER].get("depends_on") or {}
    assert worker.get("airflow-apiserver", {}).get("condition") == "service_healthy", (
        f"{WORKER}: its tasks report to the execution API: depend on airflow-apiserver being healthy"
    )
    wanted = {
        SUPERSET_INIT: {SUPERSET_DB: "service_healthy", "warehouse": "service_healthy",
                        # the BI login it registers is created by the Airflow init job
                        INIT: "service_completed_successfully"},
        SUPERSET: {SUPERSET_DB: "service_healthy", "warehouse": "service_healthy",
                   SUPERSET_INIT: "service_completed_successfully"},
    }
    for name, needs in wanted.items():
        depends = services()[name].get("depends_on") or {}
        for needed, condition in needs.items():
            got = depends.get(needed, {}).get("condition")
            assert got == condition, f"{name}: must depend on {needed} with condition {condition}, got {got!r}"


def _pinned(image: str) -> bool:
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and bool(tag) and tag != "latest"


def _dockerfile(service: str) -> str:
    return interpolate((services()[service].get("build") or {}).get("dockerfile_inline", ""))


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
    assert services()[BROKER]["image"].startswith("redis:"), f"{BROKER}: the official redis image"


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
    images = {services()[name].get("image") for name in airflow_image_services()}
    assert len(images) == 1, f"every Airflow service runs the one project image, got {images}"
    # the Celery executor's stack, locked (celery 5.7 removed an import provider 3.26 uses)
    assert "apache-airflow-providers-celery" in locked, "uv.lock: apache-airflow-providers-celery is not locked"
    major, minor = (int(part) for part in locked["celery"].split(".")[:2])
    assert (major, minor) < (5, 7), f"uv.lock locks celery {locked['celery']}: the provider needs celery<5.7"
    assert "redis" in locked, "uv.lock: the redis client (celery[redis]) is not locked"


def test_context_leaves_out_secrets_and_local_state() -> None:
    ignore = ROOT / ".dockerignore"
    assert ignore.exists(), ".dockerignore is missing: the build context (.) would carry .env and .venv"
    patterns = {line.strip().rstrip("/") for line in ignore.read_text().splitlines()
                if line.strip() and not line.startswith("#")}
    for needed in (".env", ".venv", ".vru", ".git"):
        assert needed in patterns, f".dockerignore must leave out {needed}"
    for copied in ("pyproject.toml", "uv.lock", "README.md", "plugins"):
        assert copied not in patterns, f".dockerignore leaves out {copied}, which the image copies"


def test_vru_variables_are_the_ones_the_code_reads() -> None:
    for service in services():
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


def test_the_airflow_services_share_one_environment() -> None:
    base = common_env()
    for name in airflow_image_services():
        differs = {k for k in base if env(name).get(k) != base[k]}
        assert not differs, f"{name}: {sorted(differs)} differ from the shared x-airflow-common environment"
        extra = set(env(name)) - set(base)
        allowed = EXTRA_ENV.get(name, set())
        assert extra <= allowed, f"{name}: unexpected variables {sorted(extra - allowed)} (allowed: {allowed})"
    # the scheduler queues what the workers run: they must agree on every setting
    scheduler = {k: v for k, v in env("airflow-scheduler").items() if k not in EXTRA_ENV["airflow-scheduler"]}
    worker = {k: v for k, v in env(WORKER).items() if k not in EXTRA_ENV[WORKER]}
    assert scheduler == worker, (
        f"airflow-scheduler and {WORKER} differ: {sorted(set(scheduler.items()) ^ set(worker.items()))}"
    )
    for name in (*AIRFLOW_SERVICES, WORKER):
        assert "VRU_BI_PASSWORD" not in env(name), f"{name}: only {INIT} needs the BI password"
    for required in ("VRU_HOME", "VRU_WAREHOUSE_URL", "VRU_POLICE_API_URL", "VRU_DBT_PROJECT_DIR",
                     "VRU_EXPECTATIONS_DIR", "AIRFLOW_CONN_VRU_WAREHOUSE", "AIRFLOW__CORE__DAGS_FOLDER",
                     "AIRFLOW__CORE__EXECUTOR", "AIRFLOW__CORE__PARALLELISM",
                     "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
                     "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__CORE__FERNET_KEY",
                     "AIRFLOW__CORE__LOAD_EXAMPLES"):
        assert required in base, f"the Airflow services do not set {required}"
    assert base["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert base["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    default_knife = interpolate(base["VRU_KNIFE_CRIME_URL"])
    assert default_knife == DEFAULT_KNIFE_CRIME_URL, (
        f"VRU_KNIFE_CRIME_URL defaults to {default_knife!r}, the code's default is {DEFAULT_KNIFE_CRIME_URL!r}"
    )
    default_api = interpolate(base["VRU_POLICE_API_URL"])
    assert default_api == DEFAULT_POLICE_API_URL, (
        f"VRU_POLICE_API_URL defaults to {default_api!r}, the code's default is {DEFAULT_POLICE_API_URL!r}"
    )


def test_celery_settings_are_the_code_s() -> None:
    base = common_env()
    default = inspect.signature(celery_env).parameters["concurrency"].default
    for concurrency in ("", "5"):  # the default, and a value set in .env
        values = {**env_values(), "AIRFLOW_WORKER_CONCURRENCY": concurrency}
        setting = {k: interpolate(str(v), values) for k, v in base.items()}
        expected = celery_env(setting["AIRFLOW__CELERY__BROKER_URL"], setting["AIRFLOW__CELERY__RESULT_BACKEND"],
                              int(setting["AIRFLOW__CELERY__WORKER_CONCURRENCY"]))
        assert {k: setting.get(k) for k in expected} == expected, (
            "the Celery settings in x-airflow-common must be exactly vru.airflow_local.celery_env(...)"
        )
        assert setting["AIRFLOW__CELERY__WORKER_CONCURRENCY"] == (concurrency or str(default))
    # the broker is the redis service, with the password redis requires
    broker = urlsplit(filled(base["AIRFLOW__CELERY__BROKER_URL"]))
    assert (broker.scheme, broker.hostname, broker.port) == ("redis", BROKER, 6379), (
        f"AIRFLOW__CELERY__BROKER_URL must reach the {BROKER} service on 6379"
    )
    redis = services()[BROKER]
    argv = [filled(a) for a in redis["command"]]
    assert argv[:1] == ["redis-server"] and "--requirepass" in argv, f"{BROKER}: run redis-server --requirepass"
    assert argv[argv.index("--requirepass") + 1] == broker.password, (
        f"the broker URL's password is not the one {BROKER} requires"
    )
    assert filled(env(BROKER)["REDISCLI_AUTH"]) == broker.password, (
        f"{BROKER}: REDISCLI_AUTH (the health check's redis-cli) must be the same password"
    )
    assert any("redis-cli ping" in part for part in redis["healthcheck"]["test"]), f"{BROKER}: check redis-cli ping"
    # the result backend is the Airflow metadata database, the same one Airflow itself uses
    backend = filled(base["AIRFLOW__CELERY__RESULT_BACKEND"])
    assert backend.startswith("db+postgresql"), f"result backend {backend!r}: use db+postgresql://... (the metadata DB)"
    ours = urlsplit(backend.removeprefix("db+"))
    metadata = urlsplit(filled(base["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]))
    assert (ours.hostname, ours.port, ours.username, ours.password, ours.path) == (
        metadata.hostname, metadata.port, metadata.username, metadata.password, metadata.path
    ), "AIRFLOW__CELERY__RESULT_BACKEND must be the Airflow metadata database of AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"


def test_the_worker_scales_out(airflow_facts: dict[str, Any]) -> None:
    worker = services()[WORKER]
    for key in ("container_name", "hostname", "ports"):
        assert key not in worker, (
            f"{WORKER}: no {key}, or `docker compose up --scale {WORKER}=4` cannot start four of them"
        )
    assert command_argv(WORKER) == ["celery", "worker"], f"{WORKER}: run `airflow celery worker`"
    test = worker["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL" and "inspect ping" in test[1], f"{WORKER}: ping this worker through the broker"
    # compose turns $$ into $: the shell then names this very replica's Celery node
    assert '"celery@$${HOSTNAME}"' in test[1], f"{WORKER}: ping -d \"celery@$${{HOSTNAME}}\", this replica only"
    assert celery_apps(), f"{WORKER}: the health check names no Celery app (--app)"
    for app, error in airflow_facts["celery_apps"].items():
        assert error is None, f"{WORKER}: the health check's Celery app {app} does not import: {error}"


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
    for service in set(services()) - set(airflow_image_services()):
        for name in env(service):
            assert name in IMAGE_ENV or name in ENV_VARS, (
                f"{service}: {name} is not a variable its image documents; add it to IMAGE_ENV with where"
            )
    dockerfile = _dockerfile(SUPERSET)
    assert "SUPERSET__SQLALCHEMY_DATABASE_URI" in dockerfile, (
        f"{SUPERSET}: the image's superset_config.py must read SUPERSET__SQLALCHEMY_DATABASE_URI"
    )


def test_dags_and_dbt_name_no_deployment() -> None:
    """The embedded default and this stack run the same DAGs and dbt project: only variables differ."""
    named = "|".join(re.escape(name) for name in services() if name != "warehouse")
    deployment = re.compile(rf"/opt/vru|\b(?:{named})\b|\b\w+:5432\b|\b(?:Local|Celery|Kubernetes)Executor\b")
    files = [*(ROOT / "dags").glob("*.py"),
             *(p for p in (ROOT / "dbt_project").rglob("*")
               if p.suffix in (".yml", ".yaml", ".sql", ".csv")
               and not {"target", "logs", "dbt_packages"} & set(p.relative_to(ROOT / "dbt_project").parts))]
    assert len(files) > 5, "expected the DAGs and the dbt project"
    for path in files:
        found = deployment.search(path.read_text(errors="ignore"))
        assert not found, f"{path.relative_to(ROOT)} names a deployment detail: {found[0]!r}"
    profile = yaml.safe_load((ROOT / "dbt_project" / "profiles.yml").read_text())
    for target in profile["vru"]["outputs"].values():
        for key in ("host", "port", "user", "password", "dbname"):
            assert "env_var(" in str(target[key]), f"dbt_project/profiles.yml: {key} must come from env_var()"


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
    components = {airflow_commands()[f"{service} command"][0] for service in AIRFLOW_SERVICES}
    assert components == set(COMPONENTS), (
        f"the long-running services run {sorted(components)}; vru.airflow_local.COMPONENTS is "
        f"{sorted(COMPONENTS)}"
    )
    for service, component in AIRFLOW_SERVICES.items():
        runs = airflow_commands()[f"{service} command"][0]
        assert runs == component, f"{service} must run `airflow {component}`, not `airflow {runs}`"
    assert airflow_commands()[f"{WORKER} command"] == ["celery", "worker"]


def test_init_prepares_airflow_the_warehouse_and_dbt() -> None:
    script = init_script()
    first = script.splitlines()[0].strip()
    assert first == "set -euo pipefail", f"{INIT}: start with set -euo pipefail (a failure stops it)"
    assert ["airflow", "db", "migrate"] in script_commands("airflow"), f"{INIT}: no `airflow db migrate`"
    # `vru warehouse start` only reports an external warehouse (VRU_WAREHOUSE_URL set): it applies nothing
    assert "vru warehouse start" not in script, f"{INIT}: `vru warehouse start` does not apply the schema"
    assert "python -c" not in script, f"{INIT}: use the vru CLI, not python -c"
    vru_lines = script_commands("vru")
    for needed in (["vru", "warehouse", "apply-schema"], ["vru", "warehouse", "bi-url"], ["vru", "dbt-parse"]):
        assert needed in vru_lines, f"{INIT}: `{' '.join(needed)}` is not run"
    assert vru_lines.index(["vru", "warehouse", "apply-schema"]) < vru_lines.index(["vru", "warehouse", "bi-url"]), (
        f"{INIT}: apply the schema (the group role vru_bi_reader) before creating the BI login in it"
    )
    bi_line = next(line for line in script.splitlines() if "warehouse bi-url" in line)
    assert re.search(r">\s*/dev/null", bi_line), (
        f"{INIT}: `vru warehouse bi-url` prints the BI password in its URL: keep it out of the logs"
    )
    # bi-url against an external warehouse needs the password from the environment
    for name in ("VRU_BI_USER", "VRU_BI_PASSWORD"):
        assert name in env(INIT), f"{INIT}: `vru warehouse bi-url` needs {name}"
    assert interpolate(env(INIT)["VRU_BI_USER"]) == Settings.__dataclass_fields__["bi_user"].default, (
        f"{INIT}: VRU_BI_USER's default differs from vru.config's"
    )
    for argv in vru_lines:
        done = subprocess.run([sys.executable, "-m", "vru.cli", *argv[1:], "--help"],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"{INIT}: `{' '.join(argv)}` is not a vru command: {done.stderr[-500:]}"
        if argv[1:2] == ["warehouse"]:
            assert argv[2] in done.stdout, f"{INIT}: `vru warehouse` has no action {argv[2]}"


def test_the_pool_matches_the_code() -> None:
    created = {argv[3]: argv[4:] for argv in script_commands("airflow") if argv[1:3] == ["pools", "set"]}
    assert set(created) == set(POOLS), (
        f"{INIT} creates pools {sorted(created)}, vru.airflow_local.POOLS has {sorted(POOLS)}"
    )
    for name, (slots, description) in POOLS.items():
        assert created[name][:1] == [str(slots)], f"pool {name}: {created[name][:1]} slots, POOLS: {slots}"
        assert created[name][1:2] == [description], f"pool {name}: description differs from POOLS"


def test_superset_reads_the_warehouse_as_the_bi_login_only() -> None:
    script = init_script(SUPERSET_INIT)
    assert script.splitlines()[0].strip() == "set -euo pipefail", f"{SUPERSET_INIT}: start with set -euo pipefail"
    steps = [argv[1] for argv in script_commands("superset", SUPERSET_INIT)]
    expected = ["db", "fab", "init", "set_database_uri"]
    assert [s for s in steps if s in expected] == expected, (
        f"{SUPERSET_INIT}: run superset db upgrade, fab create-admin, init, set_database_uri in that order; got {steps}"
    )
    admin = next(argv for argv in script_commands("superset", SUPERSET_INIT, env_values()) if argv[1] == "fab")
    assert admin[2] == "create-admin" and admin[admin.index("--password") + 1] == env_values()[
        "SUPERSET_ADMIN_PASSWORD"], f"{SUPERSET_INIT}: create the admin with SUPERSET_ADMIN_PASSWORD from .env"
    # the script as written, before compose interpolates it
    raw = next(shlex.split(line) for line in command_argv(SUPERSET_INIT)[2].splitlines()
               if line.strip().startswith("superset set_database_uri "))
    register = next(argv for argv in script_commands("superset", SUPERSET_INIT, env_values())
                    if argv[1] == "set_database_uri")
    assert register[register.index("-d") + 1] == "warehouse", f"{SUPERSET_INIT}: register the database as `warehouse`"
    url = urlsplit(register[register.index("-u") + 1])
    warehouse = env("warehouse")
    assert (url.scheme, url.hostname, url.port) == ("postgresql", "warehouse", 5432), (
        f"{SUPERSET_INIT}: the warehouse URL must reach the warehouse service on 5432: {url.geturl()}"
    )
    assert url.path.lstrip("/") == warehouse["POSTGRES_DB"], f"{SUPERSET_INIT}: not the warehouse database"
    assert url.username == filled(env(INIT)["VRU_BI_USER"]), (
        f"{SUPERSET_INIT}: connect as VRU_BI_USER, the login {INIT} creates, not {url.username!r}"
    )
    assert url.password == filled(env(INIT)["VRU_BI_PASSWORD"]), f"{SUPERSET_INIT}: use VRU_BI_PASSWORD"
    assert url.username != warehouse["POSTGRES_USER"], f"{SUPERSET_INIT}: never the warehouse owner"
    assert url.password != filled(warehouse["POSTGRES_PASSWORD"]), f"{SUPERSET_INIT}: never the owner's password"
    # the very same expressions as airflow-init's, so both read the same .env values and defaults
    uri_raw = raw[raw.index("-u") + 1]
    used = {m[0] for m in variables(uri_raw)}
    assert used == {env(INIT)["VRU_BI_USER"], env(INIT)["VRU_BI_PASSWORD"]}, (
        f"{SUPERSET_INIT}: take user and password as {INIT} does: {used}"
    )
    owner = {m["braced"] for m in variables(warehouse["POSTGRES_PASSWORD"])}
    for name in (SUPERSET_INIT, SUPERSET):
        for where, text in strings(services()[name]):
            names = {m["braced"] or m["bare"] for m in variables(text)}
            assert not names & owner, f"{name}.{where}: Superset must never see the warehouse owner's password"
            assert "vru:" not in text, f"{name}.{where}: Superset must never connect as the owner `vru`"
    dockerfile = _dockerfile(SUPERSET)
    base = re.search(r"^FROM\s+apache/superset:(\S+)", dockerfile, re.M)
    assert base, f"{SUPERSET}: build FROM apache/superset:<version>"
    assert services()[SUPERSET]["image"].endswith(f":{base[1]}"), f"{SUPERSET}: tag the image with Superset's version"
    assert services()[SUPERSET]["image"] == services()[SUPERSET_INIT]["image"], "one Superset image"
    lock = {p["name"]: p["version"] for p in tomllib.loads((ROOT / "uv.lock").read_text())["package"] if "version" in p}
    driver = re.search(r"psycopg2-binary==(\S+)", dockerfile)
    assert driver, f"{SUPERSET}: the lean image has no PostgreSQL driver: install psycopg2-binary==<pin>"
    assert driver[1] == lock["psycopg2-binary"], (
        f"{SUPERSET}: psycopg2-binary {driver[1]}, uv.lock has {lock['psycopg2-binary']}"
    )
    config = re.search(r"SUPERSET_CONFIG_PATH=(\S+)", dockerfile)
    assert config and config[1] in dockerfile.replace(config[0], ""), (
        f"{SUPERSET}: SUPERSET_CONFIG_PATH must name the config file the image writes"
    )
    ports = [str(p).rsplit(":", 1)[-1] for p in services()[SUPERSET].get("ports", [])]
    health = " ".join(services()[SUPERSET]["healthcheck"]["test"])
    assert any(f"localhost:{port}/health" in health for port in ports), f"{SUPERSET}: check /health on its port"


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
    for service in services():
        for source, _mode in bind_mounts(service).values():
            if not source.startswith((".", "/")):
                assert source in named, f"{service}: volume {source} is not declared under top-level volumes"


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
    # the pipeline connects as vru_pipeline, never the superuser POSTGRES_USER; only the init job
    # has the superuser's URL (VRU_WAREHOUSE_ADMIN_URL), to create roles and apply the schema
    from vru.warehouse import PIPELINE_ROLE

    pipeline = urlsplit(resolved(base["VRU_WAREHOUSE_URL"]))
    warehouse_env = env("warehouse")
    assert (pipeline.hostname, pipeline.port, pipeline.path.lstrip("/")) == (
        "warehouse", 5432, warehouse_env["POSTGRES_DB"]), "VRU_WAREHOUSE_URL must reach the warehouse database"
    assert pipeline.username == PIPELINE_ROLE != warehouse_env["POSTGRES_USER"], (
        f"VRU_WAREHOUSE_URL must connect as the pipeline role {PIPELINE_ROLE}, not {pipeline.username}"
    )
    assert not ({m["braced"] for m in variables(base["VRU_WAREHOUSE_URL"])}
                & {m["braced"] for m in variables(warehouse_env["POSTGRES_PASSWORD"])}), (
        "VRU_WAREHOUSE_URL must not carry the superuser's password"
    )
    for service, variable, database in ((INIT, "VRU_WAREHOUSE_ADMIN_URL", "warehouse"),
                                        (INIT, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "airflow-db"),
                                        (INIT, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC", "airflow-db"),
                                        (INIT, "AIRFLOW__CELERY__RESULT_BACKEND", "airflow-db"),
                                        (SUPERSET, "SUPERSET__SQLALCHEMY_DATABASE_URI", SUPERSET_DB),
                                        (SUPERSET_INIT, "SUPERSET__SQLALCHEMY_DATABASE_URI", SUPERSET_DB)):
        value = env(service)[variable]
        url = urlsplit(resolved(value).removeprefix("db+"))
        db_env = env(database)
        assert url.hostname == database, f"{service}: {variable} must point at the {database} service: {url.hostname}"
        assert url.username == db_env["POSTGRES_USER"], f"{service}: {variable}: user is not {database}'s POSTGRES_USER"
        assert url.path.lstrip("/") == db_env["POSTGRES_DB"], f"{service}: {variable}: database is not POSTGRES_DB"
        url_vars = {m["braced"] for m in variables(value)}
        db_vars = {m["braced"] for m in variables(db_env["POSTGRES_PASSWORD"])}
        assert url_vars == db_vars, f"{service}: {variable}: password is not {database}'s POSTGRES_PASSWORD variable"
    # every SQLAlchemy driver named must be installed in the image's locked virtualenv (this one):
    # Airflow's default async PostgreSQL driver, asyncpg, is not
    import importlib.util

    for variable in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"):
        scheme = urlsplit(resolved(base[variable])).scheme
        driver = scheme.split("+", 1)[1] if "+" in scheme else "psycopg"
        assert importlib.util.find_spec(driver), f"{variable} uses driver {driver}, not installed"
    assert "+psycopg" in base["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"], "the async engine needs psycopg 3"
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
    urls = 0
    for where, text in strings(compose()):
        for m in _URL_WITH_PASSWORD.finditer(text):
            urls += 1
            assert _REQUIRED_ONLY.fullmatch(m["password"]), (
                f"{where}: the URL's password must be `${{NAME:?...}}` interpolation, not {m['password']!r}"
            )
    for service in services():
        command = services()[service].get("command") or []
        argv = shlex.split(command) if isinstance(command, str) else [str(c) for c in command]
        # the command itself, and each line of a script it carries (bash -c)
        for words in (argv, *(shlex.split(line) for part in argv if "\n" in part for line in part.splitlines())):
            for i, word in enumerate(words):
                if _PASSWORD_OPTION.fullmatch(word):
                    assert i + 1 < len(words) and _REQUIRED_ONLY.fullmatch(words[i + 1]), (
                        f"{service}: {word} must be given `${{NAME:?...}}` interpolation, not a literal"
                    )
    # the warehouse (superuser, pipeline and BI), Airflow metadata (twice), broker, Superset metadata
    # and warehouse
    assert urls >= 7, f"expected every database and broker URL to carry an interpolated password, found {urls}"
    assert _REQUIRED_ONLY.fullmatch(str(env(INIT)["VRU_BI_PASSWORD"])), f"{INIT}: VRU_BI_PASSWORD from .env"


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
    required = {m["braced"] for _, text in strings(compose()) for m in variables(text) if m["op"] == ":?"}
    text = ENV_EXAMPLE.read_text()
    for name in sorted(required):
        comment = text.split(f"\n{name}=")[0].rsplit("\n\n", 1)[-1]
        assert "Generate" in comment, f".env.example: say how to generate {name} in the comment above it"
