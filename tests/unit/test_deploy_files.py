"""The deployment files against the code they start: no container engine runs here, so docker-compose.yml,
.env.example and the Dockerfile are read as data and every name in them is looked up where it must exist.

- every RAG_* variable is a field of the settings model (RAG_ prefix, `__` nesting: a misspelt one would be ignored
  silently by pydantic-settings), and the values, as compose resolves them from .env.example, validate;
- every variable compose interpolates is in .env.example, and .env.example holds nothing compose does not use;
- every command is a command of the `rag` CLI with options it takes; the ports published and exposed are the ones
  the commands listen on; every named volume is declared; healthchecks probe routes the API has;
- the image installs with the script `make install` runs, and runs as a user other than root.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from pydantic import BaseModel
from starlette.routing import Match

from kernel.settings import Settings, SettingsError, load_settings
from rag.cli import app as cli_app

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERFILE = REPO / "Dockerfile"
MAKEFILE = REPO / "Makefile"
INSTALL_SCRIPT = "scripts/install.sh"

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


# --- reading the files ---------------------------------------------------------------------------------------------


def load_compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def read_dotenv(path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        assert sep, f"{path.name}: not NAME=value: {line!r}"
        env[name.strip()] = value.strip().strip("'\"")
    return env


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's interpolation: `$$` is a literal `$`; a required variable that is unset is an error."""

    def sub(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3) or ""
        current = env.get(name)
        if op in (":-", ":?"):
            unset = not current
        else:
            unset = current is None
        if not unset:
            return str(current)
        if op in (":-", "-"):
            return arg
        raise AssertionError(f"${{{name}}} is unset: {arg or 'required'}")

    parts = value.split("$$")
    return "$".join(_VAR.sub(sub, part) for part in parts)


def compose_variables(text: str) -> set[str]:
    return {m.group(1) for m in _VAR.finditer(text.replace("$$", ""))}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        instruction, _, args = line.partition(" ")
        out.append((instruction.upper(), args.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return out


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction, args in dockerfile_instructions():
        if instruction == "ENV":
            for item in shlex.split(args):
                name, _, value = item.partition("=")
                env[name] = value
    return env


def services_env(compose: dict[str, Any], dotenv: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """Each service's environment as its container sees it, interpolated from `dotenv`."""
    out: dict[str, dict[str, str]] = {}
    for name, service in compose["services"].items():
        raw = service.get("environment") or {}
        if isinstance(raw, list):
            raw = dict(item.partition("=")[::2] for item in raw)
        out[name] = {k: interpolate(str(v), dotenv) for k, v in raw.items()}
    return out


# --- the settings model --------------------------------------------------------------------------------------------


def setting_path(variable: str) -> list[str]:
    """The field a RAG_ variable sets, walked through the settings model; KeyError names what is not there."""
    prefix = Settings.model_config.get("env_prefix", "")
    delimiter = Settings.model_config.get("env_nested_delimiter") or "__"
    if not variable.startswith(prefix):
        raise KeyError(f"{variable} does not start with {prefix}")
    model: type[BaseModel] = Settings
    path: list[str] = []
    for part in variable[len(prefix) :].lower().split(delimiter):
        if part not in model.model_fields:
            where = ".".join(path) or "Settings"
            raise KeyError(f"{variable}: {where} has no field {part!r} (fields: {', '.join(model.model_fields)})")
        path.append(part)
        annotation = model.model_fields[part].annotation
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else BaseModel
    if issubclass(model, BaseModel) and model is not BaseModel:
        raise KeyError(f"{variable} names the group {'.'.join(path)}, not one setting")
    return path


def env_problems(env: Mapping[str, str], monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What is wrong with these RAG_ variables: unknown names, or values the settings model refuses."""
    problems = []
    for variable in sorted(env):
        try:
            setting_path(variable)
        except KeyError as exc:
            problems.append(str(exc.args[0]))
    with monkeypatch.context() as patch:
        for variable in [v for v in os.environ if v.startswith("RAG_")]:
            patch.delenv(variable)
        for variable, value in env.items():
            patch.setenv(variable, value)
        try:
            load_settings()
        except SettingsError as exc:
            problems.append(str(exc))
        except Exception as exc:  # pydantic-settings' own error for a value it cannot even parse (a group as JSON)
            problems.append(f"{type(exc).__name__}: {exc}")
    return problems


def rag_variables(env: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith("RAG_")}


# --- the CLI -------------------------------------------------------------------------------------------------------


def cli_context(argv: list[str]) -> tuple[str, dict[str, Any]]:
    """Parses `rag ...` as the CLI would (without running it): the command's path and its parsed options."""
    assert argv and argv[0] == "rag", f"not a rag command: {argv}"
    # Typer carries its own copy of click (typer._click): its classes are reached through typer's public names.
    command: Any = typer.main.get_command(cli_app)
    args = argv[1:]
    path = ["rag"]
    while hasattr(command, "list_commands"):  # a group: the next word names one of its commands
        assert args, f"{' '.join(argv)}: `{' '.join(path)}` needs a subcommand"
        name, args = args[0], args[1:]
        sub = command.get_command(typer.Context(command, info_name=path[-1]), name)
        assert sub is not None, f"{' '.join(argv)}: `{' '.join(path)}` has no command {name!r}"
        command = sub
        path.append(name)
    ctx = command.make_context(path[-1], list(args))
    return " ".join(path), dict(ctx.params)


def command_port(argv: list[str], env: Mapping[str, str]) -> int:
    """The port a `rag serve|api` command listens on: its --port, else RAG_PORT, else the settings' default."""
    _, params = cli_context(argv)
    if params.get("port") is not None:
        return int(params["port"])
    return int(env.get("RAG_PORT", Settings.model_fields["port"].default))


# --- the checks ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture(scope="module")
def dotenv() -> dict[str, str]:
    return read_dotenv(ENV_EXAMPLE)


def test_compose_interpolates_only_variables_of_env_example(dotenv: dict[str, str]) -> None:
    used = compose_variables(COMPOSE.read_text())
    assert used - set(dotenv) == set(), "docker-compose.yml reads variables .env.example does not have"
    assert set(dotenv) - used == set(), ".env.example has variables docker-compose.yml does not read"


def test_every_rag_variable_is_a_setting_with_a_valid_value(
    compose: dict[str, Any], dotenv: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    envs = services_env(compose, dotenv)
    rag_services = [name for name, service in compose["services"].items() if _is_rag(service)]
    assert {"api", "worker"} <= set(rag_services)
    image = rag_variables(dockerfile_env())
    for name in rag_services:
        env = {**image, **rag_variables(envs[name])}
        assert "RAG_QDRANT__SHARDS" in env and "RAG_REDIS__URL" in env
        assert env_problems(env, monkeypatch) == [], name
    assert env_problems(rag_variables(dotenv), monkeypatch) == []


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("RAG_QDRANT__SHARD", "2"),  # a field misspelt: pydantic-settings would drop it without a word
        ("RAG_QDRNT__SHARDS", "2"),  # a group misspelt
        ("RAG_INGESTION_WORKER_CONCURRENCY", "2"),  # one underscore where nesting needs two
        ("RAG_QDRANT", "x"),  # a group, not a setting
        ("RAG_QDRANT__SHARDS", "0"),  # a real setting with a value it refuses
        ("RAG_DATABASE__URL", "mysql://db/rag"),
        ("RAG_QDRANT__WRITE_CONSISTENCY_FACTOR", "5"),  # more confirmations than copies
        ("RAG_INGESTION__JOB_LEASE_SECONDS", "2"),  # a lease too short to renew every third of it
    ],
)
def test_a_wrong_variable_is_caught(
    variable: str, value: str, compose: dict[str, Any], dotenv: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = rag_variables(services_env(compose, dotenv)["api"])
    assert env_problems(env, monkeypatch) == []
    problems = env_problems({**env, variable: value}, monkeypatch)
    assert problems and variable in "\n".join(problems), problems


def _is_rag(service: dict[str, Any]) -> bool:
    return service.get("image") == "rag-service:latest" or "build" in service


def test_every_command_is_a_rag_command(compose: dict[str, Any]) -> None:
    seen = {}
    for name, service in compose["services"].items():
        if _is_rag(service):
            seen[name] = cli_context(service["command"])[0]
    assert seen == {"api": "rag api", "worker": "rag worker"}
    cmd = next(args for instruction, args in dockerfile_instructions() if instruction == "CMD")
    assert cli_context(yaml.safe_load(cmd))[0] == "rag api"


@pytest.mark.parametrize(
    "argv", [["rag", "wokrer"], ["rag", "api", "--prot", "8000"], ["rag", "api", "--port", "http"], ["rag", "db"]]
)
def test_a_wrong_command_is_caught(argv: list[str]) -> None:
    with pytest.raises((AssertionError, typer.TyperException)):
        cli_context(argv)


def test_ports_are_the_ones_the_commands_listen_on(compose: dict[str, Any], dotenv: dict[str, str]) -> None:
    image_env = dockerfile_env()
    api = compose["services"]["api"]
    port = command_port(api["command"], {**image_env, **services_env(compose, dotenv)["api"]})
    published = [interpolate(str(p), dotenv) for p in api["ports"]]
    assert [int(p.rsplit(":", 1)[1]) for p in published] == [port]
    assert f"127.0.0.1:{port}/readyz" in " ".join(api["healthcheck"]["test"])
    exposed = [args for instruction, args in dockerfile_instructions() if instruction == "EXPOSE"]
    assert exposed == [str(command_port(["rag", "api"], image_env))]
    # Scaled services publish nothing and have no fixed name: N replicas would collide on either.
    worker = compose["services"]["worker"]
    assert "ports" not in worker and "container_name" not in worker
    assert not any("container_name" in s for s in compose["services"].values())


def test_volumes_are_declared_and_used(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    used = set()
    for name, service in compose["services"].items():
        for volume in service.get("volumes") or []:
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume["source"]
            if source.startswith((".", "/", "~")):
                continue  # a bind mount
            assert source in declared, f"service {name} mounts undeclared volume {source!r}"
            used.add(source)
    assert declared == used, f"declared but unused: {declared - used}"
    # The API stores originals that the workers parse: one volume, mounted at the data directory of both.
    for name in ("api", "worker"):
        assert "rag-data:/var/lib/rag" in compose["services"][name]["volumes"]
        assert services_env(compose, read_dotenv(ENV_EXAMPLE))[name]["RAG_DATA_DIR"] == "/var/lib/rag"


def _paths(text: str) -> set[str]:
    return set(re.findall(r"https?://[^/'\" ]+(/[A-Za-z0-9_/-]*)", text))


def test_healthchecks_probe_routes_the_api_has(compose: dict[str, Any], tmp_path: Path) -> None:
    from rag.api.app import create_app

    app = create_app(load_settings(data_dir=tmp_path))  # the route table only: no lifespan, no backend starts

    def served(path: str) -> bool:
        # Starlette's own matching: included routers are nested route objects, not flat paths.
        scope = {"type": "http", "path": path, "method": "GET", "root_path": "", "headers": []}
        return any(route.matches(scope)[0] == Match.FULL for route in app.router.routes)

    assert not served("/readyz-not-a-route")
    checked = {"redis", "postgres", "qdrant", "api"}
    for name in checked:
        assert compose["services"][name]["healthcheck"]["test"], name
    api_check = " ".join(compose["services"]["api"]["healthcheck"]["test"])
    docker_check = next(args for instruction, args in dockerfile_instructions() if instruction == "HEALTHCHECK")
    for text in (api_check, docker_check):
        assert _paths(text) == {"/readyz"}, text
    assert served("/readyz") and served("/healthz")
    # Everything that needs them waits for the backends to be healthy, not merely started.
    for name in ("api", "worker"):
        depends = compose["services"][name]["depends_on"]
        assert {k: v["condition"] for k, v in depends.items()} == dict.fromkeys(
            ("redis", "postgres", "qdrant"), "service_healthy"
        )


def _recipe_installs(makefile: str) -> Iterator[str]:
    """The Makefile's recipe lines (tab-indented, not comments) that install anything with pip or the script."""
    for line in makefile.splitlines():
        command = line.strip()
        if line.startswith("\t") and not command.startswith("#") and ("pip" in command or INSTALL_SCRIPT in command):
            yield command


def test_the_image_installs_with_the_script_make_runs() -> None:
    makefile = MAKEFILE.read_text()
    installs = list(_recipe_installs(makefile))
    assert installs == [f"sh {INSTALL_SCRIPT} $(VENV)"], "the Makefile must install through the script only"
    assert re.search(rf"^\$\(STAMP\):.*\b{re.escape(INSTALL_SCRIPT)}\b", makefile, re.M), "a script change reinstalls"
    runs = [args for instruction, args in dockerfile_instructions() if instruction == "RUN"]
    installs = [args for args in runs if "pip" in args or INSTALL_SCRIPT in args]
    assert len(installs) == 1 and f"sh {INSTALL_SCRIPT} --production" in installs[0], installs
    copied = [args for instruction, args in dockerfile_instructions() if instruction == "COPY"]
    assert any(args.split()[0] == INSTALL_SCRIPT for args in copied)
    script = (REPO / INSTALL_SCRIPT).read_text()
    assert "torch==2.13.0" in script and "--no-deps unstructured-inference" in script
    assert script.index("torch==2.13.0") < script.index("pip install -q --no-cache-dir")


def test_the_image_runs_as_a_user_other_than_root() -> None:
    users = [args for instruction, args in dockerfile_instructions() if instruction == "USER"]
    assert users and users[-1] not in ("root", "0"), users
