"""The deployment manifests: valid against Kubernetes' schemas, and consistent with the image they run.

The Kubernetes resources under deploy/kubernetes are validated with kubernetes-validate (strict: unknown fields
are errors) against the schemas of a pinned Kubernetes version. The port, user and store path they assume are read
from the Dockerfile's runtime stage, so changing one side without the other fails here.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pytest
import yaml
from conftest import REPO, YUNET
from server_fixture import ServiceProcess, astronaut, encode

from model_store.store import ModelStore

pytest_plugins = ["server_fixture"]

KUBERNETES_VERSION = "1.33.0"  # the oldest minor release the manifests are checked for
KUBERNETES = REPO / "deploy" / "kubernetes"
PATCH_SUFFIX = "-patch.yaml"  # strategic-merge patches, applied with `kubectl patch`, not resources
# Kubernetes' merge keys for the lists a patch of ours touches.
MERGE_KEYS = {"containers": "name", "volumes": "name", "volumeMounts": "mountPath", "env": "name"}


@dataclass(frozen=True)
class Runtime:
    """What the Dockerfile's last stage declares."""

    env: dict[str, str]
    ports: list[int]
    user: str


def dockerfile_runtime() -> Runtime:
    logical: list[str] = []
    pending = ""
    for line in (REPO / "Dockerfile").read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        pending += line.rstrip().removesuffix("\\") + " "
        if not line.rstrip().endswith("\\"):
            logical.append(pending.strip())
            pending = ""
    last_stage = max(i for i, line in enumerate(logical) if line.upper().startswith("FROM "))
    env: dict[str, str] = {}
    ports: list[int] = []
    user = ""
    for line in logical[last_stage:]:
        instruction, _, args = line.partition(" ")
        match instruction.upper():
            case "ENV":
                env |= dict(item.split("=", 1) for item in shlex.split(args))
            case "EXPOSE":
                ports += [int(port.split("/")[0]) for port in args.split()]
            case "USER":
                user = args.strip()
    return Runtime(env=env, ports=ports, user=user)


RUNTIME = dockerfile_runtime()


def load_all(path: Path) -> list[dict[str, Any]]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


def manifest_files() -> list[Path]:
    return sorted(path for path in KUBERNETES.rglob("*.yaml") if not path.name.endswith(PATCH_SUFFIX))


RESOURCES = [(path, resource) for path in manifest_files() for resource in load_all(path)]


def resource(kind: str) -> dict[str, Any]:
    (found,) = [r for path, r in RESOURCES if r["kind"] == kind and path.parent == KUBERNETES]
    return found


def strategic_merge(base: Any, patch: Any, field: str = "") -> Any:
    """`kubectl patch`'s default merge, for the maps and keyed lists our patches use."""
    if isinstance(base, dict) and isinstance(patch, dict):
        return {**base, **{key: strategic_merge(base.get(key), value, key) for key, value in patch.items()}}
    if isinstance(base, list) and isinstance(patch, list) and field in MERGE_KEYS:
        key = MERGE_KEYS[field]
        merged = {item[key]: item for item in base}
        for item in patch:
            merged[item[key]] = strategic_merge(merged.get(item[key]), item, field="")
        return list(merged.values())
    return patch


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


def test_the_manifest_folder_holds_the_deployment_service_and_autoscaler() -> None:
    kinds = {r["kind"] for path, r in RESOURCES if path.parent == KUBERNETES}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler"} <= kinds


@pytest.mark.parametrize(
    "manifest",
    [r for _, r in RESOURCES],
    ids=[f"{path.relative_to(KUBERNETES)}:{r['kind']}/{r['metadata']['name']}" for path, r in RESOURCES],
)
def test_every_resource_is_valid_for_the_pinned_kubernetes_version(manifest: dict[str, Any]) -> None:
    kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


def test_validation_rejects_an_unknown_field() -> None:
    deployment = resource("Deployment")
    broken = strategic_merge(deployment, {"spec": {"replica": 2}})

    with pytest.raises(kubernetes_validate.ValidationError, match="replica"):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_selectors_reach_the_pods() -> None:
    deployment = resource("Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selectors = {
        "Deployment": deployment["spec"]["selector"]["matchLabels"],
        "Service": resource("Service")["spec"]["selector"],
        "PodDisruptionBudget": resource("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
    }
    for kind, selector in selectors.items():
        assert selector.items() <= pod_labels.items(), f"{kind} selects {selector}, pods carry {pod_labels}"
    target = resource("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == ("apps/v1", "Deployment", "microexp")


def test_the_service_and_probes_use_the_port_the_image_exposes() -> None:
    app = container(resource("Deployment"))
    ports = {port["name"]: port["containerPort"] for port in app["ports"]}
    assert list(ports.values()) == RUNTIME.ports
    assert resource("Service")["spec"]["ports"][0]["targetPort"] in ports
    probes = {
        name: (app[name]["httpGet"]["path"], app[name]["httpGet"]["port"])
        for name in ("livenessProbe", "readinessProbe")
    }
    assert probes == {"livenessProbe": ("/healthz", "http"), "readinessProbe": ("/readyz", "http")}


def test_pods_run_as_the_images_non_root_user_on_a_read_only_root() -> None:
    deployment = resource("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    app = container(deployment)
    uid, _, gid = RUNTIME.user.partition(":")
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (int(uid), int(gid))
    assert app["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    # Uploads over 1 MB are spooled to /tmp, so a read-only root needs a writable /tmp.
    tmp = next(mount["name"] for mount in app["volumeMounts"] if mount["mountPath"] == "/tmp")
    assert "emptyDir" in next(volume for volume in pod["volumes"] if volume["name"] == tmp)


def test_resources_let_the_autoscaler_measure_cpu() -> None:
    resources = container(resource("Deployment"))["resources"]
    metric = resource("HorizontalPodAutoscaler")["spec"]["metrics"][0]["resource"]
    assert metric["name"] == "cpu" and "cpu" in resources["requests"]
    assert set(resources["limits"]) == set(resources["requests"]) == {"cpu", "memory"}


def test_the_store_volume_patch_mounts_over_the_images_store() -> None:
    (patch,) = load_all(KUBERNETES / "model-store" / f"deployment{PATCH_SUFFIX}")
    patched = strategic_merge(resource("Deployment"), patch)
    kubernetes_validate.validate(patched, KUBERNETES_VERSION, strict=True)

    pod = patched["spec"]["template"]["spec"]
    mounts = {mount["mountPath"]: mount for mount in container(patched)["volumeMounts"]}
    store = mounts[RUNTIME.env["MICROEXP_STORE"]]
    assert store["readOnly"] is True and "/tmp" in mounts
    (volume,) = [volume for volume in pod["volumes"] if volume["name"] == store["name"]]
    claims = [r["metadata"]["name"] for _, r in RESOURCES if r["kind"] == "PersistentVolumeClaim"]
    assert volume["persistentVolumeClaim"]["claimName"] in claims


def test_compose_mounts_a_store_where_the_image_reads_it() -> None:
    (compose,) = load_all(REPO / "compose.yaml")
    (service,) = compose["services"].values()
    assert service["build"] == "."
    host, _, target = service["volumes"][0].rpartition(":")[0].rpartition(":")
    assert host and target == RUNTIME.env["MICROEXP_STORE"] and service["volumes"][0].endswith(":ro")
    assert [port.rpartition(":")[2] for port in service["ports"]] == [str(port) for port in RUNTIME.ports]
    assert all(port.startswith("127.0.0.1:") for port in service["ports"])
    assert service["read_only"] is True and "/tmp" in service["tmpfs"]


def seed_job() -> dict[str, Any]:
    (job,) = load_all(KUBERNETES / "model-store" / "seed-job.yaml")
    return job


def test_the_seed_job_fills_the_claimed_volume_from_the_images_store() -> None:
    pod = seed_job()["spec"]["template"]["spec"]
    (volume,) = pod["volumes"]
    claims = [r["metadata"]["name"] for _, r in RESOURCES if r["kind"] == "PersistentVolumeClaim"]
    assert volume["persistentVolumeClaim"]["claimName"] in claims
    script = container(seed_job())["command"][-1]
    assert f"{RUNTIME.env['MICROEXP_STORE']}/{YUNET.name}" in script
    # Its pod is not the API's: neither the Service nor the disruption budget may select it.
    labels = seed_job()["spec"]["template"]["metadata"]["labels"].items()
    budget = resource("PodDisruptionBudget")["spec"]["selector"]["matchLabels"]
    for selector in (resource("Service")["spec"]["selector"], budget):
        assert not selector.items() <= labels


@pytest.mark.parametrize("volume", ["new", "new, with lost+found", "holding a store"])
def test_the_seed_job_copies_a_new_volume_whole_and_an_old_one_only_its_missing_detector(
    tmp_path: Path, model_store_root: Path, volume: str
) -> None:
    image_store, target = tmp_path / "image", tmp_path / "volume"
    shutil.copytree(REPO / "models", image_store)
    target.mkdir()
    if volume == "new, with lost+found":
        (target / "lost+found").mkdir()
    elif volume == "holding a store":
        shutil.copytree(model_store_root, target, dirs_exist_ok=True)
        (target / YUNET.name).unlink()
    before = ModelStore(target).models()
    (volume_mount,) = container(seed_job())["volumeMounts"]
    script = container(seed_job())["command"][-1]
    script = script.replace(RUNTIME.env["MICROEXP_STORE"], str(image_store)).replace(
        volume_mount["mountPath"], str(target)
    )

    subprocess.run(["sh", "-c", script], check=True, timeout=60)

    store = ModelStore(target)
    assert store.verify() == []
    assert store.models() == (before or ModelStore(image_store).models())


@pytest.mark.parametrize("source", ["deployment", "compose"])
def test_the_manifests_detect_with_yunet_with_no_configuration(source: str, tmp_path: Path) -> None:
    if source == "deployment":
        env = {item["name"]: item["value"] for item in container(resource("Deployment"))["env"]}
        # The Secret's files where the pod mounts them: a token and a key, as `kubectl create secret` makes them.
        (mount,) = [m for m in container(resource("Deployment"))["volumeMounts"] if m["name"] == "access"]
        secrets = tmp_path / "secrets"
        secrets.mkdir()
        env = {name: value.replace(mount["mountPath"], str(secrets)) for name, value in env.items()}
        Path(env["MICROEXP_ADMIN_TOKEN_FILE"]).write_text("admin-token")
        Path(env["MICROEXP_API_KEYS_FILE"]).write_text("a-key")
    else:
        (compose,) = load_all(REPO / "compose.yaml")
        (service,) = compose["services"].values()
        # As compose interpolates them from an environment that sets none of them.
        env = {name: re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value) for name, value in service["environment"].items()}
    assert not {"MICROEXP_DETECTOR", "MICROEXP_YUNET_MODEL"} & set(env)
    # The image's settings and the manifest's, on the store the image bakes in and compose mounts (host and port
    # are the test's).
    settings = {name: value for name, value in RUNTIME.env.items() if name.startswith("MICROEXP_")} | env
    service = ServiceProcess(REPO / "models", tmp_path / "service.log", env=settings)
    try:
        service.wait_ready()
        headers = {"content-type": "image/jpeg", "X-API-Key": "a-key"}
        response = httpx.post(f"{service.url}/v1/predict", content=encode(astronaut()), headers=headers)
        assert response.json()["detector"] == "yunet" and len(response.json()["faces"]) == 1
        admin = httpx.post(f"{service.url}/admin/reload", headers={"Authorization": "Bearer admin-token"})
        # The Deployment's pods need the key and have the admin endpoints on; compose, with nothing set, neither.
        assert admin.status_code == (200 if source == "deployment" else 403)
        open_call = httpx.get(f"{service.url}/v1/models")
        assert open_call.status_code == (401 if source == "deployment" else 200)
    finally:
        service.stop()
