"""cluster/: every KubeRay manifest against the real CustomResourceDefinition schemas (as the
Kubernetes API server checks a custom resource, unknown fields refused), the cluster launcher
YAML against Ray's own config schema, versions, images, entrypoints and config paths."""

from __future__ import annotations

import copy
import functools
import gzip
import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from raymer.config import ExtractConfig, RecognizeConfig, ServeConfig, TrainConfig, load_config

ROOT = Path(__file__).parents[2]
CLUSTER = ROOT / "cluster"
CRDS = ROOT / "tests" / "data" / "kuberay"
SHARED_CRDS = ROOT.parent / "shared" / "schemas" / "kuberay"
APP_DIR = "/home/ray/raymer"  # where cluster/Dockerfile puts the repository
KINDS = {"RayCluster": "rayclusters", "RayJob": "rayjobs", "RayService": "rayservices"}


def _ray_version() -> str:
    """The Ray the project is tested with: requirements.txt's pin (pyproject has a range)."""
    text = (ROOT / "requirements.txt").read_text()
    return re.search(r"^ray==([\d.]+)$", text, re.M).group(1)


@functools.cache
def _crd(plural: str) -> dict:
    """A CRD, parsed once per session (libyaml's loader where PyYAML has it: the CRDs are
    megabytes of YAML)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(gzip.decompress((CRDS / f"ray.io_{plural}.yaml.gz").read_bytes()), loader)


def _strict(schema: dict) -> dict:
    """The schema with unknown fields refused where Kubernetes refuses them (objects with
    declared properties and no x-kubernetes-preserve-unknown-fields)."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


def _validate(doc: dict) -> None:
    _validator(doc["kind"], doc["apiVersion"]).validate(doc)


@functools.cache
def _validator(kind: str, api_version: str):
    """The API server's check of one kind and version (built once per session)."""
    from openapi_schema_validator import OAS30Validator

    crd = _crd(KINDS[kind])
    group, version = api_version.split("/")
    assert group == crd["spec"]["group"] == "ray.io"
    served = {v["name"]: v for v in crd["spec"]["versions"] if v["served"]}
    assert version in served and served[version]["storage"], f"{api_version} not stored"
    schema = _strict(served[version]["schema"]["openAPIV3Schema"])
    schema["properties"]["metadata"] = {
        "type": "object",
        "required": ["name"],
        "properties": {"name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"}},
    }
    return OAS30Validator(schema)


def _manifests() -> list[tuple[str, dict]]:
    out = []
    for path in sorted(CLUSTER.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") in KINDS:
                out.append((path.name, doc))
    return out


def _cluster_specs(doc: dict) -> list[dict]:
    spec = doc["spec"]
    return [
        s
        for s in (spec, spec.get("rayClusterSpec"), spec.get("rayClusterConfig"))
        if s and "headGroupSpec" in s
    ]


def _images(cluster_spec: dict) -> list[str]:
    groups = [cluster_spec["headGroupSpec"], *cluster_spec.get("workerGroupSpecs", [])]
    return [c["image"] for g in groups for c in g["template"]["spec"]["containers"]]


def test_vendored_crds_are_the_shared_ones():
    if not SHARED_CRDS.is_dir():  # a clone without the shared folder: the vendored copy rules
        assert len(list(CRDS.glob("*.yaml.gz"))) == 3
        return
    for plural in KINDS.values():
        shared = (SHARED_CRDS / f"ray.io_{plural}.yaml").read_bytes()
        assert gzip.decompress((CRDS / f"ray.io_{plural}.yaml.gz").read_bytes()) == shared


def test_every_kind_has_a_manifest():
    found = {(doc["kind"], name) for name, doc in _manifests()}
    kinds = [k for k, _ in found]
    assert kinds.count("RayCluster") == 1 and kinds.count("RayService") == 1
    assert {n for k, n in found if k == "RayJob"} == {
        "rayjob-extract.yaml",
        "rayjob-train.yaml",
        "rayjob-recognize.yaml",
    }


@pytest.mark.parametrize("name,doc", _manifests(), ids=lambda v: v if isinstance(v, str) else "")
def test_manifest_validates_against_the_kuberay_crd(name, doc):
    _validate(doc)


def test_the_validation_refuses_what_the_api_server_refuses():
    doc = next(d for n, d in _manifests() if d["kind"] == "RayCluster")
    from jsonschema.exceptions import ValidationError

    bad = copy.deepcopy(doc)
    bad["spec"]["workerGroupSpecs"][0]["maxReplica"] = 4  # typo: unknown field
    with pytest.raises(ValidationError, match="maxReplica"):
        _validate(bad)
    bad = copy.deepcopy(doc)
    bad["spec"]["workerGroupSpecs"][0]["minReplicas"] = "zero"  # wrong type
    with pytest.raises(ValidationError):
        _validate(bad)
    bad = copy.deepcopy(doc)
    del bad["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["name"]  # required
    with pytest.raises(ValidationError, match="name"):
        _validate(bad)


def test_ray_version_and_images_match_the_pinned_ray():
    version = _ray_version()
    for name, doc in _manifests():
        for spec in _cluster_specs(doc):
            assert spec["rayVersion"] == version, name
            assert spec.get("authOptions", {}).get("mode") == "token", name
            for image in _images(spec):
                assert re.search(rf"-ray{re.escape(version)}(-gpu)?$", image), (name, image)
    docker = (CLUSTER / "Dockerfile").read_text()
    assert f"ARG BASE=rayproject/ray:{version}-py311" in docker
    launcher = yaml.safe_load((CLUSTER / "launcher-aws.yaml").read_text())
    assert launcher["docker"]["image"].endswith(f"-ray{version}-gpu")


def test_gpu_worker_group_autoscales_from_zero():
    doc = next(d for n, d in _manifests() if d["kind"] == "RayCluster")
    assert doc["spec"]["enableInTreeAutoscaling"] is True
    assert doc["spec"]["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    gpu = [g for g in doc["spec"]["workerGroupSpecs"] if g["groupName"] == "gpu"][0]
    assert gpu["minReplicas"] == 0 and gpu["maxReplicas"] >= 1
    limits = gpu["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == "1"


def test_rayjob_entrypoints_and_configs_exist_and_load():
    loaders = {"extract_features.py": ExtractConfig, "train_fusion.py": TrainConfig}
    loaders["recognize_corpus.py"] = RecognizeConfig
    for name, doc in _manifests():
        if doc["kind"] != "RayJob":
            continue
        words = shlex.split(doc["spec"]["entrypoint"])
        assert words[0] == "python" and words[1].startswith(APP_DIR + "/")
        script = ROOT / words[1][len(APP_DIR) + 1 :]
        assert script.is_file(), script
        config = ROOT / words[words.index("--config") + 1][len(APP_DIR) + 1 :]
        assert config.is_file(), config
        cfg = load_config(loaders[script.name], str(config), [])
        flags = dict(zip(words[2::2], words[3::2], strict=False))
        for key in ("--input", "--features", "--output"):
            if key in flags:
                assert flags[key].startswith("s3://"), (name, key)
        assert cfg.resources.use_gpu, (
            name
        )  # the job's cluster has GPU workers: the config uses them
        assert doc["spec"]["shutdownAfterJobFinishes"] is True


def test_serve_configs_run_build_app_with_valid_settings():
    from ray.serve.schema import ServeDeploySchema

    deploy = yaml.safe_load((CLUSTER / "serve_config.yaml").read_text())
    ServeDeploySchema.model_validate(deploy) if hasattr(
        ServeDeploySchema, "model_validate"
    ) else ServeDeploySchema.parse_obj(deploy)
    service = next(d for n, d in _manifests() if d["kind"] == "RayService")
    inner = yaml.safe_load(service["spec"]["serveConfigV2"])
    for app in deploy["applications"] + inner["applications"]:
        module, func = app["import_path"].split(":")
        assert (ROOT / (module.replace(".", "/") + ".py")).is_file()
        assert func == "build_app"
        ServeConfig(**app["args"])


def test_launcher_yaml_passes_rays_own_validation():
    import json

    import jsonschema
    import ray.autoscaler
    from ray.autoscaler._private.util import prepare_config, validate_config

    text = (CLUSTER / "launcher-aws.yaml").read_text()
    raw = yaml.safe_load(text)
    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(raw, schema)  # the file as written
    validate_config(prepare_config(copy.deepcopy(raw)))  # what `ray up` checks after defaults
    types = raw["available_node_types"]
    assert types["gpu_worker"]["min_workers"] == 0
    assert types["gpu_worker"]["node_config"]["InstanceMarketOptions"]["MarketType"] == "spot"
    assert types[raw["head_node_type"]]["resources"] == {"CPU": 0}
    bad = copy.deepcopy(raw)
    bad["max_worker"] = 3
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_launcher_yaml_comments_every_field():
    lines = (CLUSTER / "launcher-aws.yaml").read_text().splitlines()
    for n, line in enumerate(lines):
        if re.match(r"^\s*[\w./-]+:", line) and "#" not in line:
            above = lines[n - 1].strip() if n else ""
            assert above.startswith("#"), f"line {n + 1} has no comment: {line.strip()}"


def test_the_image_holds_only_the_package_and_never_local_state():
    dockerfile = (CLUSTER / "Dockerfile").read_text()
    copies = [line.split()[-2] for line in dockerfile.splitlines() if line.startswith("COPY")]
    assert "." not in copies, "COPY . . would take .venv, data/, runs/ and any secret"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "data/", "runs/", ".env"} <= set(ignored)


def test_served_configs_need_a_token_file():
    """The cluster configs listen on 0.0.0.0: each names a token file (a mounted secret)."""
    deploy = yaml.safe_load((CLUSTER / "serve_config.yaml").read_text())
    service = next(d for n, d in _manifests() if d["kind"] == "RayService")
    inner = yaml.safe_load(service["spec"]["serveConfigV2"])
    for app in deploy["applications"] + inner["applications"]:
        assert app["args"]["auth_token_file"].startswith("/var/run/secrets/")
        assert not app["args"].get("allow_anonymous")
    mounts = json.dumps(service["spec"]["rayClusterConfig"])
    assert mounts.count('"mountPath": "/var/run/secrets/raymer"') == 2  # head and workers


def test_pods_run_unprivileged_without_an_api_token():
    """Every pod of every manifest: no service-account token mounted (Ray needs none), not
    root, no privilege escalation, no capabilities."""
    pods = 0
    for name, doc in _manifests():
        for cluster_spec in _cluster_specs(doc):
            groups = [cluster_spec["headGroupSpec"], *cluster_spec.get("workerGroupSpecs", [])]
            for group in groups:
                pod = group["template"]["spec"]
                pods += 1
                assert pod["automountServiceAccountToken"] is False, name
                assert pod["securityContext"]["runAsNonRoot"] is True, name
                assert pod["securityContext"]["runAsUser"] != 0, name
                for container in pod["containers"]:
                    sc = container["securityContext"]
                    assert sc["allowPrivilegeEscalation"] is False, (name, container["name"])
                    assert sc["capabilities"]["drop"] == ["ALL"], (name, container["name"])
    assert pods >= 6


def test_the_image_runs_unprivileged_and_holds_no_test_tools():
    """The lock (requirements.txt) holds the test tools too: the image takes it as a
    constraint on raymer's own dependencies, never as the list to install, and ends as a
    non-root user."""
    lines = [line.strip() for line in (CLUSTER / "Dockerfile").read_text().splitlines()]
    runs = " ".join(line for line in lines if line.startswith(("RUN", "&&")))
    assert "-r requirements.txt" not in runs and "--constraint requirements.txt" in runs
    assert '".[plots]"' in runs and "test" not in runs
    users = [line.split()[1] for line in lines if line.startswith("USER")]
    assert users and users[-1] not in ("root", "0")
