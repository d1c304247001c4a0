"""infra/docker-compose.yml validated without a Docker engine: Compose interpolation from .env.example, the Compose
Specification JSON schema (vendored in infra/compose-spec/, checked with ``jsonschema``), and the stack's contract
(services, auth flags, secrets only from the environment, GPU reservation, files that exist)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from pipelines.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
COMPOSE = INFRA / "docker-compose.yml"
SCHEMA = INFRA / "compose-spec" / "compose-spec.json"
ENV_EXAMPLE = ROOT / ".env.example"
SECRETS = (
    "MLFLOW_TRACKING_PASSWORD",
    "PREFECT_API_AUTH_STRING",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "POSTGRES_PASSWORD",
    "MLFLOW_DB_PASSWORD",
    "PREFECT_DB_PASSWORD",
    "MLFLOW_FLASK_SERVER_SECRET_KEY",
)
_VAR = re.compile(r"\$\$|\$\{(?P<braced>[^}$]*(?:\$\{[^}]*\}[^}$]*)*)\}|\$(?P<plain>[A-Za-z_][A-Za-z0-9_]*)")


class MissingVariableError(KeyError):
    pass


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose interpolation: $$, $VAR, ${VAR}, ${VAR:-d}, ${VAR-d}, ${VAR:?e}, ${VAR?e}, ${VAR:+a}, ${VAR+a}."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        if match.group("plain"):
            return env.get(match.group("plain"), "")
        expr = match.group("braced")
        op = re.match(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])(.*))?$", expr, re.DOTALL)
        assert op, f"bad interpolation ${{{expr}}}"
        name, kind, arg = op.group(1), op.group(2), op.group(3) or ""
        value = env.get(name)
        empty = value is None or (kind is not None and kind.startswith(":") and value == "")
        if kind in (":-", "-"):
            return interpolate(arg, env) if empty else value or ""
        if kind in (":?", "?"):
            if empty:
                raise MissingVariableError(f"{name}: {arg}")
            return value or ""
        if kind in (":+", "+"):
            return "" if empty else interpolate(arg, env)
        return value or ""

    return _VAR.sub(one, text)


def _compose_text() -> str:
    """The compose file without its comment lines (Compose interpolates values, not comments)."""
    return "\n".join(line for line in COMPOSE.read_text().splitlines() if not line.lstrip().startswith("#"))


def _env_example() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines() if line and not line.startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


def _filled_env() -> dict[str, str]:
    env = _env_example()
    env.update({name: f"test-{name.lower()}-value" for name in SECRETS})
    env["PREFECT_API_AUTH_STRING"] = "glcf:test-prefect-password"
    return env


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(interpolate(_compose_text(), _filled_env()))


def test_interpolator_follows_compose_rules() -> None:
    env = {"A": "a", "E": ""}
    assert interpolate("$$A ${A} $A ${B:-d} ${E:-d} ${E-d} ${B:+x} ${A:+x}", env) == "$A a a d d   x"
    assert interpolate("${B:-${A:-z}}", env) == "a"
    with pytest.raises(MissingVariableError, match="E: need E"):
        interpolate("${E:?need E}", env)


def test_schema_file_is_the_vendored_compose_spec() -> None:
    schema = json.loads(SCHEMA.read_text())
    assert schema["title"] == "Compose Specification"
    assert (INFRA / "compose-spec" / "LICENSE").read_text().count("Apache License") >= 1
    jsonschema.Draft7Validator.check_schema(schema)


def test_compose_file_is_valid_against_the_compose_specification(compose: dict) -> None:
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_schema_rejects_a_broken_file(compose: dict) -> None:
    """The validation has teeth: a misspelt key and a wrong type are reported."""
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    broken = json.loads(json.dumps(compose))
    broken["services"]["mlflow"]["comand"] = broken["services"]["mlflow"].pop("command")
    broken["services"]["postgres"]["volumes"] = "pgdata-as-a-string"
    messages = [e.message for e in validator.iter_errors(broken)]
    assert any("comand" in m for m in messages)
    assert any("pgdata-as-a-string" in m for m in messages)


@pytest.mark.parametrize("secret", SECRETS)
def test_each_secret_is_required(secret: str) -> None:
    env = _filled_env()
    env[secret] = ""
    with pytest.raises(MissingVariableError, match=secret):
        interpolate(_compose_text(), env)


def test_every_variable_is_documented_in_env_example() -> None:
    names = {m.group(1) for m in re.finditer(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", _compose_text())}
    documented = set(_env_example())
    assert names, "no variables found"
    assert names - documented == set()
    settings_vars = {name.upper() for name in Settings.model_fields}
    assert settings_vars - documented == set()


def test_env_example_holds_no_secret_and_env_is_ignored() -> None:
    env = _env_example()
    assert all(env[name] == "" for name in SECRETS)
    ignored = subprocess.run(["git", "check-ignore", "-q", "--no-index", ".env"], cwd=ROOT, check=False)
    assert ignored.returncode == 0
    not_ignored = subprocess.run(["git", "check-ignore", "-q", "--no-index", ".env.example"], cwd=ROOT, check=False)
    assert not_ignored.returncode == 1


def test_secrets_only_come_from_the_environment() -> None:
    raw = yaml.safe_load(COMPOSE.read_text())
    services = raw["services"]
    secret_key = re.compile(r"PASSWORD|SECRET|AUTH_STRING|ACCESS_KEY")
    for name, service in services.items():
        env = service.get("environment", {}) or {}
        for key, value in env.items():
            if key == "<<" or not secret_key.search(key):
                continue
            assert isinstance(value, str), f"{name}.{key}"
            assert value.startswith("${"), f"{name}.{key} is not an interpolated variable"
    assert "password" not in json.dumps(services["mlflow"]["command"]).lower()


def test_services_and_their_contract(compose: dict) -> None:
    services = compose["services"]
    assert set(services) == {
        "postgres", "s3", "s3-init", "mlflow", "prefect-server", "worker-cpu", "worker-gpu", "serve",
    }  # fmt: skip
    mlflow = " ".join(services["mlflow"]["command"])
    assert "--backend-store-uri=postgresql+psycopg2://mlflow@postgres:5432/mlflow" in mlflow
    assert "--artifacts-destination=s3://glcf/mlflow" in mlflow
    assert "--app-name=basic-auth" in mlflow
    assert "--allowed-hosts=mlflow:5000,localhost:5000,127.0.0.1:5000" in mlflow
    mlflow_env = services["mlflow"]["environment"]
    assert mlflow_env["MLFLOW_AUTH_CONFIG_PATH"] == "/etc/mlflow/basic_auth.ini"
    assert mlflow_env["MLFLOW_S3_ENDPOINT_URL"] == "http://s3:8333"
    assert services["prefect-server"]["environment"]["PREFECT_SERVER_DATABASE_DRIVER"] == "postgresql+asyncpg"

    cpu, gpu = services["worker-cpu"], services["worker-gpu"]
    assert "--pool=cpu" in cpu["command"]
    assert "--pool=gpu" in gpu["command"]
    assert "deploy" not in cpu
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert "--limit=1" in gpu["command"]  # one flow run per reserved GPU

    serve = " ".join(services["serve"]["command"])
    assert "--model-uri=models:/glcf-breakfast_box@champion" in serve
    assert services["serve"]["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert "AWS_SECRET_ACCESS_KEY" not in services["serve"]["environment"]  # proxied artifacts: no S3 keys


def test_references_resolve(compose: dict) -> None:
    services = compose["services"]
    for name, service in services.items():
        for dep in service.get("depends_on", {}):
            assert dep in services, f"{name} depends on unknown {dep}"
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (INFRA / source).is_file(), f"{name} mounts missing {source}"
            else:
                assert source in compose["volumes"], f"{name} uses undeclared volume {source}"
        if "build" in service:
            assert (INFRA / service["build"]["context"] / service["build"]["dockerfile"]).is_file()


def test_dockerfiles_install_from_the_lock() -> None:
    project = (INFRA / "docker" / "Dockerfile").read_text()
    assert "uv sync --frozen --no-dev" in project
    for copied in re.findall(r"^COPY (?!--)(.+) \S+$", project, re.MULTILINE):
        for source in copied.split():
            assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"
    assert "--constraint /build/constraints.txt" in (INFRA / "docker" / "mlflow.Dockerfile").read_text()
