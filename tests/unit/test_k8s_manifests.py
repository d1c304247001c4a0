"""infra/k8s: every manifest parses and has the expected kinds and fields; the Prefect base job templates render
(with Prefect's own template engine) to Jobs whose GPU pool requests ``nvidia.com/gpu``. No cluster needed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

K8S = Path(__file__).resolve().parents[2] / "infra" / "k8s"
SECRET_NAME = re.compile(r"PASSWORD|SECRET|AUTH_STRING|ACCESS_KEY")


def _docs() -> list[dict]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    return docs


def _by_kind_name() -> dict[tuple[str, str], dict]:
    return {(d["kind"], d["metadata"]["name"]): d for d in _docs()}


def _containers(doc: dict) -> list[dict]:
    return doc["spec"]["template"]["spec"]["containers"]


def _template(name: str) -> dict:
    return json.loads((K8S / "job-templates" / f"{name}.json").read_text())


def _render(template: dict, **overrides: object) -> dict:
    from prefect.utilities.templating import apply_values

    values = {k: v.get("default") for k, v in template["variables"]["properties"].items()}
    values.update({"name": "glcf-train", "command": "prefect flow-run execute", "env": {}, "labels": {}})
    values.update(overrides)
    return apply_values(template["job_configuration"], values)


def test_every_manifest_parses_with_identity() -> None:
    docs = _docs()
    assert len(docs) >= 10
    for doc in docs:
        assert {"apiVersion", "kind", "metadata"} <= set(doc)
        assert doc["metadata"]["name"]


def test_expected_objects_exist() -> None:
    objects = _by_kind_name()
    for key in [
        ("ConfigMap", "glcf-config"),
        ("ConfigMap", "mlflow-auth"),
        ("Deployment", "mlflow"),
        ("Service", "mlflow"),
        ("ServiceAccount", "prefect-worker"),
        ("Role", "prefect-worker"),
        ("RoleBinding", "prefect-worker"),
        ("ServiceAccount", "glcf-flow-run"),
        ("Deployment", "prefect-worker-gpu"),
        ("Deployment", "prefect-worker-cpu"),
        ("Deployment", "glcf-serve"),
        ("Service", "glcf-serve"),
    ]:
        assert key in objects, key
    assert not [d for d in _docs() if d["kind"] == "Secret"]  # secrets come from .env, never from git


def test_kustomization_lists_existing_files() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        assert (K8S / resource).is_file(), resource
    files = [f for gen in kustomization["configMapGenerator"] for f in gen["files"]]
    assert sorted(files) == ["job-templates/cpu.json", "job-templates/gpu.json"]
    assert {i["name"] for i in kustomization["images"]} == {"glcf", "glcf-mlflow"}


def test_services_select_their_deployments() -> None:
    objects = _by_kind_name()
    for name, deployment in (("mlflow", "mlflow"), ("glcf-serve", "glcf-serve")):
        service, dep = objects[("Service", name)], objects[("Deployment", deployment)]
        assert service["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()
        assert dep["spec"]["selector"]["matchLabels"] == dep["spec"]["template"]["metadata"]["labels"]
        port_names = {p["name"] for c in _containers(dep) for p in c.get("ports", [])}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names


def test_mlflow_server_flags_and_secrets() -> None:
    dep = _by_kind_name()[("Deployment", "mlflow")]
    (container,) = _containers(dep)
    args = " ".join(container["args"])
    assert "--backend-store-uri=postgresql+psycopg2://mlflow@$(PG_HOST):$(PG_PORT)/mlflow" in args
    assert "--artifacts-destination=s3://$(GLCF_S3_BUCKET)/mlflow" in args
    assert "--app-name=basic-auth" in args
    assert "--allowed-hosts=$(MLFLOW_ALLOWED_HOSTS)" in args
    env = {e["name"]: e for e in container["env"]}
    for var in re.findall(r"\$\((\w+)\)", args):  # every $(VAR) in args is defined in env
        assert var in env, var
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "glcf-secrets", "key": "MLFLOW_DB_PASSWORD"}
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    ini = _by_kind_name()[("ConfigMap", "mlflow-auth")]["data"]["basic_auth.ini"]
    assert "postgresql+psycopg2://mlflow@" in ini


def test_no_literal_secret_values_and_limits_everywhere() -> None:
    for doc in _docs():
        if doc["kind"] != "Deployment":
            continue
        assert doc["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
        for container in _containers(doc):
            assert container["resources"]["requests"], doc["metadata"]["name"]
            assert container["resources"]["limits"]["memory"], doc["metadata"]["name"]
            for env in container.get("env", []):
                if SECRET_NAME.search(env["name"]):
                    assert "value" not in env, f"{doc['metadata']['name']}: {env['name']} is a literal"
                    assert "secretKeyRef" in env["valueFrom"]


def test_workers_poll_their_pools_with_their_templates() -> None:
    objects = _by_kind_name()
    for kind in ("gpu", "cpu"):
        (container,) = _containers(objects[("Deployment", f"prefect-worker-{kind}")])
        assert f"--pool=glcf-{kind}-k8s" in container["args"]
        assert "--type=kubernetes" in container["args"]
        assert f"--base-job-template=/etc/glcf/job-templates/{kind}.json" in container["args"]
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert "/etc/glcf/job-templates" in mounts
        assert objects[("Deployment", f"prefect-worker-{kind}")]["spec"]["template"]["spec"]["serviceAccountName"] == (
            "prefect-worker"
        )
    rules = objects[("Role", "prefect-worker")]["rules"]
    job_rule = next(r for r in rules if "jobs" in r["resources"])
    assert {"create", "get", "watch", "delete"} <= set(job_rule["verbs"])


@pytest.mark.parametrize("name", ["gpu", "cpu"])
def test_job_template_variables_are_a_valid_schema(name: str) -> None:
    template = _template(name)
    schema = template["variables"]
    jsonschema.Draft7Validator.check_schema(schema)
    defaults = {k: v["default"] for k, v in schema["properties"].items() if "default" in v}
    jsonschema.validate(defaults, schema)
    placeholders = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", json.dumps(template["job_configuration"])))
    assert placeholders <= set(schema["properties"]), placeholders - set(schema["properties"])


def test_gpu_template_renders_a_job_requesting_gpus() -> None:
    config = _render(_template("gpu"))
    job = config["job_manifest"]
    assert job["kind"] == "Job"
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["resources"]["requests"]["nvidia.com/gpu"] == 1
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    assert container["args"] == "prefect flow-run execute"
    assert {"secretRef": {"name": "glcf-flow-secrets"}} in container["envFrom"]
    two = _render(_template("gpu"), gpu_count=2)["job_manifest"]["spec"]["template"]["spec"]["containers"][0]
    assert two["resources"]["limits"]["nvidia.com/gpu"] == 2


def test_cpu_template_requests_no_gpu() -> None:
    config = _render(_template("cpu"))
    (container,) = config["job_manifest"]["spec"]["template"]["spec"]["containers"]
    assert "nvidia.com/gpu" not in json.dumps(container["resources"])
    assert container["resources"]["requests"]["cpu"] == "2"


def test_serving_uses_the_champion_alias() -> None:
    (container,) = _containers(_by_kind_name()[("Deployment", "glcf-serve")])
    assert "--model-uri=models:/glcf-$(GLCF_SERVE_CATEGORY)@champion" in container["args"]
    assert "--env-manager=local" in container["args"]
    env = {e["name"] for e in container["env"]}
    assert {"GLCF_SERVE_CATEGORY", "MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_PASSWORD"} <= env
    assert "AWS_SECRET_ACCESS_KEY" not in env  # artifacts come through the tracking server
    assert container["readinessProbe"]["httpGet"]["path"] == "/ping"
