"""docker-compose.yml and the Dockerfile, checked without a Docker engine.

The compose file must follow the compose specification, refer only to files that exist (or
that its `secrets-init` service generates), pin every image, publish ports on 127.0.0.1 only,
and agree with the configs it mounts: Prometheus scrapes compose services on the ports they
listen on, Alertmanager posts to the mailer's port, Grafana reads prometheus:9090, and the
mailer sends to mailpit:1025.
"""

from __future__ import annotations

import fnmatch
import glob
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.support.ci import running_in_ci
from tests.support.paths import BIN, REPO_ROOT

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
COMPOSE = yaml.safe_load(COMPOSE_FILE.read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
INIT_SERVICE = "secrets-init"

# Default listening ports of images whose port is not set on their command line.
IMAGE_DEFAULT_PORTS = {"grafana/grafana": {3000}}


# -- reading the compose model --------------------------------------------------------------


@dataclass(frozen=True)
class Mount:
    source: str  # host path (bind), volume name (volume) or config name (config)
    target: str
    kind: str  # bind, volume or config


def mounts(service: dict[str, Any]) -> list[Mount]:
    """The service's bind mounts, volumes and configs, short or long syntax."""
    result = []
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
            kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        else:
            source, target, kind = volume.get("source", ""), volume["target"], volume["type"]
        result.append(Mount(source, target, kind))
    for config in service.get("configs", []):
        name = config if isinstance(config, str) else config["source"]
        target = f"/{name}" if isinstance(config, str) else config.get("target", f"/{name}")
        result.append(Mount(name, target, "config"))
    return result


def resolve(service: dict[str, Any], container_path: str) -> tuple[Mount, str]:
    """The mount that holds `container_path` and the path's remainder inside it."""
    path = PurePosixPath(container_path)
    best = None
    for mount in mounts(service):
        target = PurePosixPath(mount.target)
        if path == target or target in path.parents:
            if best is None or len(target.parts) > len(PurePosixPath(best.target).parts):
                best = mount
    if best is None:
        raise AssertionError(f"{container_path} is not on any mount of the service")
    return best, str(path.relative_to(best.target)) if path != PurePosixPath(best.target) else ""


def host_path(service: dict[str, Any], container_path: str) -> Path:
    """The checkout path a container path is bind-mounted from."""
    mount, rest = resolve(service, container_path)
    assert mount.kind == "bind", f"{container_path} is on {mount.kind} {mount.source}"
    return (REPO_ROOT / mount.source / rest).resolve()


def command_args(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else list(command)


def flag_value(args: list[str], flag: str) -> str | None:
    """The value of `--flag=value` or `--flag value` in an argument list."""
    for index, arg in enumerate(args):
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
        if arg == flag and index + 1 < len(args):
            return args[index + 1]
    return None


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def listening_ports(name: str) -> set[int]:
    """The ports a service listens on inside the compose network, read from its settings."""
    service = SERVICES[name]
    args = command_args(service)
    env = service.get("environment", {})
    ports = set()
    for flag in ("--listen", "--bind", "--web.listen-address"):
        value = flag_value(args, flag)
        if value:
            ports.add(port_of(value))
    for key in ("MP_SMTP_BIND_ADDR", "MP_UI_BIND_ADDR"):
        if key in env:
            ports.add(port_of(env[key]))
    image = service["image"].rsplit(":", 1)[0]
    ports |= IMAGE_DEFAULT_PORTS.get(image, set())
    return ports


def mailer_config() -> dict[str, Any]:
    [config] = [c for c in SERVICES["mailer"]["configs"]]
    return yaml.safe_load(COMPOSE["configs"][config["source"]]["content"])


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus duration such as 192h or 1w2d."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
    parts = re.findall(r"(\d+)(ms|s|m|h|d|w|y)", text)
    assert parts and "".join(n + u for n, u in parts) == text, f"not a duration: {text}"
    return sum(int(n) * units[u] for n, u in parts)


def http_targets(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname and parts.port, f"{url} must name a host and a port"
    return parts.hostname, parts.port


SERVICE_NAMES = sorted(SERVICES)
BIND_MOUNTS = [
    (name, mount)
    for name in SERVICE_NAMES
    for mount in mounts(SERVICES[name])
    if mount.kind == "bind"
]


# -- the compose file as a whole ----------------------------------------------------------


def compose_schema() -> dict[str, Any]:
    try:
        from importlib.resources import files

        import check_jsonschema  # noqa: F401 - ships the compose-spec schema
    except ImportError:
        message = "check-jsonschema is not installed (it ships the compose-spec schema)"
        if running_in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    path = files("check_jsonschema") / "builtin_schemas" / "vendor" / "compose-spec.json"
    return json.loads(path.read_text())


def schema_errors(document: Any) -> list[str]:
    import jsonschema

    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [
        f"{'/'.join(map(str, error.path))}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def test_the_compose_file_follows_the_compose_specification() -> None:
    assert schema_errors(COMPOSE) == []


def test_the_schema_check_catches_a_misspelt_key() -> None:
    broken = yaml.safe_load(COMPOSE_FILE.read_text())
    broken["services"]["mailer"]["healtcheck"] = broken["services"]["mailer"].pop("healthcheck")
    assert schema_errors(broken)


def test_nothing_is_taken_from_the_host_environment() -> None:
    """A lone `$` is interpolated by compose from the host's environment; scripts use `$$`."""
    text = re.sub(r"\$\$", "", COMPOSE_FILE.read_text())
    assert "$" not in text


def test_the_stack_has_every_service() -> None:
    assert {
        "prometheus",
        "alertmanager",
        "grafana",
        "mailpit",
        "exporter",
        "mailer",
        "demo",
        INIT_SERVICE,
    } <= set(SERVICES)


def test_only_the_scenario_driver_is_in_the_demo_profile() -> None:
    assert SERVICES["demo"]["profiles"] == ["demo"]
    assert [name for name in SERVICES if SERVICES[name].get("profiles")] == ["demo"]


# -- files --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "mount"), BIND_MOUNTS, ids=[f"{n}:{m.source}" for n, m in BIND_MOUNTS]
)
def test_bind_mounted_paths_exist(name: str, mount: Mount) -> None:
    assert (REPO_ROOT / mount.source).exists(), f"{name} mounts {mount.source}, which is missing"


def test_bind_mounts_are_read_only() -> None:
    for name in SERVICE_NAMES:
        for volume in SERVICES[name].get("volumes", []):
            if isinstance(volume, str) and volume.startswith("."):
                assert volume.endswith(":ro"), f"{name}: {volume} must be mounted read-only"


def test_named_volumes_and_configs_are_declared() -> None:
    for name in SERVICE_NAMES:
        for mount in mounts(SERVICES[name]):
            if mount.kind == "volume":
                assert mount.source in COMPOSE["volumes"], f"{name}: volume {mount.source}"
            if mount.kind == "config":
                assert mount.source in COMPOSE["configs"], f"{name}: config {mount.source}"


def test_stores_and_tsdb_live_on_named_volumes() -> None:
    exporter_db = flag_value(command_args(SERVICES["exporter"]), "--db")
    prometheus_tsdb = flag_value(command_args(SERVICES["prometheus"]), "--storage.tsdb.path")
    alertmanager_data = flag_value(command_args(SERVICES["alertmanager"]), "--storage.path")
    for service, path in (
        ("exporter", exporter_db),
        ("mailer", mailer_config()["store"]["path"]),
        ("prometheus", prometheus_tsdb),
        ("alertmanager", alertmanager_data),
        ("grafana", "/var/lib/grafana/grafana.db"),
    ):
        assert path, f"{service}: no data path"
        mount, _ = resolve(SERVICES[service], path)
        assert mount.kind == "volume", f"{service}: {path} is not on a named volume"


def generated_secret_files() -> dict[str, set[str]]:
    """Volume name -> file names the secrets-init service writes into it."""
    init = SERVICES[INIT_SERVICE]
    script = "\n".join(command_args(init))
    result: dict[str, set[str]] = {}
    for mount in mounts(init):
        if mount.kind == "volume":
            files = re.findall(re.escape(mount.target.rstrip("/")) + r"/([\w.-]+)", script)
            result[mount.source] = set(files)
    return result


def secret_file_references() -> list[tuple[str, str]]:
    """(service, container path) of every secret file a service reads."""
    references = []
    for name in SERVICE_NAMES:
        for key, value in SERVICES[name].get("environment", {}).items():
            if key.endswith("_FILE"):
                references.append((name, value))
    return references


@pytest.mark.parametrize(("name", "path"), secret_file_references())
def test_secret_files_are_generated_by_the_init_service(name: str, path: str) -> None:
    mount, rest = resolve(SERVICES[name], path)
    assert mount.kind == "volume", f"{name}: secret {path} must come from a secrets volume"
    assert rest in generated_secret_files().get(mount.source, set()), (
        f"{INIT_SERVICE} does not create {rest} in volume {mount.source}"
    )
    assert INIT_SERVICE in waits_for(name), f"{name} may start before its secrets exist"


def waits_for(name: str) -> set[str]:
    """Services `name` waits for, directly or through its dependencies, to be done or up."""
    found: set[str] = set()
    for dependency, spec in SERVICES[name].get("depends_on", {}).items():
        if spec.get("condition") in ("service_completed_successfully", "service_healthy"):
            found |= {dependency} | waits_for(dependency)
    return found


def test_the_init_service_is_a_one_shot_that_never_prints_a_token() -> None:
    init = SERVICES[INIT_SERVICE]
    assert init.get("restart") == "no"
    script = "\n".join(command_args(init))
    assert "if [ ! -s" in script, "existing tokens must be kept"
    assert not re.search(r"\bcat\b|echo \"?\$\$\(", script)


# -- images -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_images_are_pinned(name: str) -> None:
    image = SERVICES[name]["image"]
    repository, _, tag = image.rpartition(":")
    assert repository and "/" not in tag, f"{name}: {image} has no tag"
    assert tag != "latest" and re.search(r"\d", tag), f"{name}: {image} is not pinned"


def test_the_built_image_is_tagged_with_the_project_version() -> None:
    version = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
    built = {SERVICES[name]["image"] for name in SERVICE_NAMES if "build" in SERVICES[name]}
    assert built == {f"sysnotify:{version}"}
    for name in SERVICE_NAMES:
        build = SERVICES[name].get("build")
        if build:
            assert (REPO_ROOT / build["context"] / build["dockerfile"]).is_file()


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, arguments = line.partition(" ")
            result.append((instruction.upper(), arguments.strip()))
    return result


def dockerignore_excludes(path: str) -> bool:
    """Whether .dockerignore keeps `path` (a file or directory) out of the build context."""
    excluded = False
    for pattern in (REPO_ROOT / ".dockerignore").read_text().splitlines():
        pattern = pattern.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(path.split("/")[0], pattern):
            excluded = not negated
    return excluded


def test_dockerfile_copy_sources_exist_and_reach_the_build_context() -> None:
    copies = [args for instruction, args in dockerfile_instructions() if instruction == "COPY"]
    assert copies
    for args in copies:
        words = [word for word in args.split() if not word.startswith("--")]
        for source in words[:-1]:
            assert glob.glob(str(REPO_ROOT / source)), f"COPY {source}: not in the checkout"
            assert not dockerignore_excludes(source.rstrip("/")), (
                f"COPY {source}: excluded by .dockerignore"
            )


def test_dockerignore_keeps_local_state_out() -> None:
    for path in (".venv", ".git", "var", "run", "tests", "exporter.db"):
        assert dockerignore_excludes(path), path


def test_dockerfile_installs_the_project_as_a_non_root_user() -> None:
    instructions = dockerfile_instructions()
    [base] = [args for instruction, args in instructions if instruction == "FROM"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", base), base
    runs = " ".join(args for instruction, args in instructions if instruction == "RUN")
    assert "pip install ." in runs
    users = [args for instruction, args in instructions if instruction == "USER"]
    assert users and not users[-1].startswith(("root", "0")), "the image must not run as root"
    copied = [args.split()[-1] for instruction, args in instructions if instruction == "COPY"]
    assert "./templates" in copied


# -- ports and health ---------------------------------------------------------------------


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_published_ports_bind_loopback_and_match_the_service(name: str) -> None:
    for port in SERVICES[name].get("ports", []):
        assert isinstance(port, str), f"{name}: use the HOST_IP:HOST:CONTAINER form"
        host_ip, _, container = port.split(":")
        assert host_ip == "127.0.0.1", f"{name}: {port} is published beyond loopback"
        assert int(container) in listening_ports(name), f"{name}: nothing listens on {container}"


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_long_running_services_have_healthchecks(name: str) -> None:
    service = SERVICES[name]
    if service.get("restart") == "no":
        return
    test = service["healthcheck"]["test"]
    ports = listening_ports(name)
    urls = re.findall(r"http://127\.0\.0\.1:(\d+)/", " ".join(test))
    for port in urls:
        assert int(port) in ports, f"{name}: healthcheck on {port}, listening on {ports}"


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_dependencies_wait_for_what_they_can(name: str) -> None:
    for dependency, spec in SERVICES[name].get("depends_on", {}).items():
        assert dependency in SERVICES, f"{name} depends on unknown {dependency}"
        condition = spec["condition"]
        if condition == "service_healthy":
            assert "healthcheck" in SERVICES[dependency], f"{dependency} has no healthcheck"
        if condition == "service_completed_successfully":
            assert SERVICES[dependency].get("restart") == "no"


# -- the configs agree with the services --------------------------------------------------


def prometheus_config() -> tuple[dict[str, Any], Path]:
    args = command_args(SERVICES["prometheus"])
    path = host_path(SERVICES["prometheus"], flag_value(args, "--config.file") or "")
    assert path.is_file(), f"{path} is missing"
    return yaml.safe_load(path.read_text()), path


def test_prometheus_scrapes_compose_services_on_their_ports() -> None:
    config, _ = prometheus_config()
    targets = [
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    ]
    assert targets
    for target in targets:
        host, port = target.rsplit(":", 1)
        # localhost is Prometheus itself, in its own container.
        service = "prometheus" if host == "localhost" else host
        assert service in SERVICES, f"scrape target {target}: no compose service {host}"
        assert int(port) in listening_ports(service), f"scrape target {target}: wrong port"
    assert {t.rsplit(":", 1)[0] for t in targets} >= {"exporter", "mailer"}


def test_prometheus_sends_alerts_to_the_alertmanager_service() -> None:
    config, _ = prometheus_config()
    targets = [
        target
        for alertmanagers in config["alerting"]["alertmanagers"]
        for static in alertmanagers["static_configs"]
        for target in static["targets"]
    ]
    assert targets
    for target in targets:
        host, port = target.rsplit(":", 1)
        assert host == "alertmanager" and int(port) in listening_ports("alertmanager"), target


def test_prometheus_rule_files_resolve_inside_the_container() -> None:
    config, path = prometheus_config()
    config_dir = PurePosixPath(
        flag_value(command_args(SERVICES["prometheus"]), "--config.file") or ""
    ).parent
    assert config["rule_files"]
    for pattern in config["rule_files"]:
        container = os.path.normpath(str(config_dir / pattern))
        host = host_path(SERVICES["prometheus"], str(PurePosixPath(container).parent))
        matches = glob.glob(str(host / PurePosixPath(container).name))
        assert matches, f"rule_files {pattern}: nothing at {container} in the container"
        # The same pattern from the checkout (the local stack) finds the same files.
        local = glob.glob(str(path.parent / pattern))
        assert sorted(map(os.path.realpath, matches)) == sorted(map(os.path.realpath, local))


def alertmanager_config() -> tuple[dict[str, Any], str]:
    container = flag_value(command_args(SERVICES["alertmanager"]), "--config.file") or ""
    path = host_path(SERVICES["alertmanager"], container)
    assert path.is_file(), f"{path} is missing"
    return yaml.safe_load(path.read_text()), container


def webhook_configs() -> list[dict[str, Any]]:
    config, _ = alertmanager_config()
    return [
        webhook
        for receiver in config["receivers"]
        for webhook in receiver.get("webhook_configs", [])
    ]


def test_alertmanager_webhooks_point_at_the_mailer_port() -> None:
    assert webhook_configs()
    for webhook in webhook_configs():
        host, port = http_targets(webhook["url"])
        assert host == "mailer" and port in listening_ports("mailer"), webhook["url"]


def test_alertmanager_webhook_token_file_is_generated() -> None:
    _, container = alertmanager_config()
    for webhook in webhook_configs():
        token_file = webhook["http_config"]["authorization"]["credentials_file"]
        path = str(PurePosixPath(container).parent / token_file)
        mount, rest = resolve(SERVICES["alertmanager"], path)
        assert mount.kind == "volume"
        assert rest in generated_secret_files()[mount.source], path


def test_alertmanager_keeps_its_log_longer_than_every_repeat_interval() -> None:
    config, _ = alertmanager_config()
    retention = parse_duration(
        flag_value(command_args(SERVICES["alertmanager"]), "--data.retention") or ""
    )
    assert retention >= 170 * 3600

    def repeat_intervals(route: dict[str, Any]) -> list[float]:
        own = [parse_duration(route["repeat_interval"])] if "repeat_interval" in route else []
        return own + [
            value for child in route.get("routes", []) for value in repeat_intervals(child)
        ]

    assert retention > max(repeat_intervals(config["route"]), default=0)


def test_grafana_reads_the_compose_prometheus() -> None:
    grafana = SERVICES["grafana"]
    provisioning = host_path(grafana, "/etc/grafana/provisioning")
    datasources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    for datasource in datasources:
        host, port = http_targets(datasource["url"])
        assert host == "prometheus" and port in listening_ports("prometheus")
    providers = yaml.safe_load((provisioning / "dashboards" / "sysnotify.yml").read_text())[
        "providers"
    ]
    for provider in providers:
        dashboards = host_path(grafana, provider["options"]["path"])
        assert list(dashboards.glob("*.json")), f"no dashboards at {dashboards}"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert host_path(grafana, home).is_file()


def test_the_mailer_sends_to_mailpit() -> None:
    smtp = mailer_config()["smtp"]
    assert smtp["host"] == "mailpit"
    assert smtp["port"] == 1025 and 1025 in listening_ports("mailpit")


def test_the_mailer_config_is_valid(tmp_path: Path) -> None:
    from sysnotify.mailer.config import config_from_mapping

    raw = mailer_config()
    # The installed package brings its templates; the image keeps no source tree to point at.
    assert "templates_dir" not in raw
    raw["store"]["path"] = str(tmp_path / "mailer.db")
    env = {"SYSNOTIFY_WEBHOOK_TOKEN": "w" * 32, "SYSNOTIFY_ADMIN_TOKEN": "a" * 32}
    config = config_from_mapping(raw, env, base_dir=tmp_path)
    assert config.smtp.security == "none"


def test_the_mailer_config_agrees_with_alertmanagers_routes(tmp_path: Path) -> None:
    # `sysnotify-mailer check-config` on what this stack runs: the mailer's config, the
    # Alertmanager file it mounts and the --data.retention it starts Alertmanager with.
    config = tmp_path / "mailer.yml"
    config.write_text(yaml.safe_dump(mailer_config()))
    alertmanager_args = command_args(SERVICES["alertmanager"])
    result = subprocess.run(
        [
            str(BIN / "sysnotify-mailer"),
            "--config",
            str(config),
            "check-config",
            "--alertmanager",
            str(host_path(SERVICES["alertmanager"], alertmanager_config()[1])),
            "--alertmanager-retention",
            flag_value(alertmanager_args, "--data.retention") or "120h",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_the_exporter_serves_on_all_interfaces_of_its_container() -> None:
    args = command_args(SERVICES["exporter"])
    assert args[:2] == ["sysnotify-exporter", "serve"]
    assert flag_value(args, "--listen") == "0.0.0.0:9730"
    mailer = command_args(SERVICES["mailer"])
    assert mailer[0] == "gunicorn" and mailer[-1] == "sysnotify.mailer.web.app:create_app()"


def test_grafana_rate_interval_floor_is_the_scrape_interval() -> None:
    config, _ = prometheus_config()
    grafana = SERVICES["grafana"]
    provisioning = host_path(grafana, "/etc/grafana/provisioning")
    [datasource] = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert datasource["jsonData"]["timeInterval"] == config["global"]["scrape_interval"]


# -- the compose commands, run on loopback ------------------------------------------------


def demo_script() -> str:
    demo = SERVICES["demo"]
    assert demo["entrypoint"] == ["python", "-c"]
    [script] = command_args(demo)
    return script


def test_the_demo_driver_reads_only_generated_secrets() -> None:
    script = demo_script()
    compile(script, "demo", "exec")
    names = set(re.findall(r'secret\("([\w.-]+)"\)', script))
    assert names == {"admin-token", "ingest-token"}
    directory = re.search(r'os\.path\.join\("([^"]+)", name\)', script)
    assert directory
    for name in names:
        mount, rest = resolve(SERVICES["demo"], f"{directory.group(1)}/{name}")
        assert rest in generated_secret_files()[mount.source]


def on_loopback(args: list[str], replacements: dict[str, str]) -> list[str]:
    """A compose command with its listen address and data paths replaced."""
    return [replacements.get(arg, arg) for arg in args]


@pytest.mark.integration
def test_the_compose_services_and_demo_driver_work_together(tmp_path: Path) -> None:
    """The exporter and mailer started with the compose commands and settings (on loopback),
    then the demo driver's script run against them: recipients set, facts ingested."""
    import requests

    from stack.process import Service, free_port, http_ready

    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for name in ("ingest-token", "webhook-token", "admin-token"):
        (secrets / name).write_text(f"{name}-{os.getpid()}-local-test\n")
    exporter_port, mailer_port = free_port(), free_port()

    def environment(service: str) -> dict[str, str]:
        env = {key: str(value) for key, value in SERVICES[service].get("environment", {}).items()}
        return {
            key: value.replace("/run/sysnotify-secrets", str(secrets)) for key, value in env.items()
        }

    exporter_args = command_args(SERVICES["exporter"])
    exporter_argv = on_loopback(
        exporter_args,
        {
            flag_value(exporter_args, "--listen") or "": f"127.0.0.1:{exporter_port}",
            flag_value(exporter_args, "--db") or "": str(tmp_path / "exporter.db"),
        },
    )
    config = mailer_config()
    config["store"]["path"] = str(tmp_path / "mailer.db")
    config["templates_dir"] = str(REPO_ROOT / "templates")
    config["smtp"]["port"] = free_port()  # nothing listens: the outbox keeps the emails
    config_path = tmp_path / "mailer.yml"
    config_path.write_text(yaml.safe_dump(config))
    mailer_env = environment("mailer") | {"SYSNOTIFY_MAILER_CONFIG": str(config_path)}
    mailer_args = command_args(SERVICES["mailer"])
    mailer_argv = on_loopback(
        mailer_args,
        {
            flag_value(mailer_args, "--bind") or "": f"127.0.0.1:{mailer_port}",
        },
    )
    bin_dir = Path(sys.executable).parent
    exporter_argv[0] = str(bin_dir / exporter_argv[0])
    mailer_argv[0] = str(bin_dir / mailer_argv[0])

    script = demo_script()
    script = script.replace("http://exporter:9730", f"http://127.0.0.1:{exporter_port}")
    script = script.replace("http://mailer:9731", f"http://127.0.0.1:{mailer_port}")
    script = script.replace("/run/sysnotify-secrets", str(secrets))

    exporter_url = f"http://127.0.0.1:{exporter_port}"
    mailer_url = f"http://127.0.0.1:{mailer_port}"
    with (
        Service(
            "exporter",
            exporter_argv,
            tmp_path / "exporter.log",
            ready=http_ready(f"{exporter_url}/healthz"),
            env=environment("exporter"),
            cwd=tmp_path,
        ),
        Service(
            "mailer",
            mailer_argv,
            tmp_path / "mailer.log",
            ready=http_ready(f"{mailer_url}/readyz"),
            env=mailer_env,
            cwd=REPO_ROOT,
        ),
    ):
        demo = subprocess.run(
            [sys.executable, "-c", script],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            env=os.environ | environment("demo") | {"DEMO_RECOVER_AFTER": "0"},
            timeout=120,
            check=False,
        )
        assert demo.returncode == 0, demo.stdout + demo.stderr
        assert "fixes posted" in demo.stdout

        admin = (secrets / "admin-token").read_text().strip()
        answer = requests.get(
            f"{mailer_url}/api/v1/accounts/acc-northwind/recipients",
            headers={"Authorization": f"Bearer {admin}"},
            timeout=10,
        )
        assert answer.status_code == 200
        addresses = json.dumps(answer.json())
        assert "admin@northwind.example" in addresses
        assert "crm-team@northwind.example" in addresses

        metrics = requests.get(f"{exporter_url}/metrics", timeout=10).text
        assert re.search(r'abm_account_info\{[^}]*account="acc-umbrella"', metrics)
        # The recovery was applied: Umbrella's sync is no longer running.
        assert re.search(r'abm_sync_running\{account="acc-umbrella"\} 0(\.0)?\n', metrics)
