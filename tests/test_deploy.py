"""deploy/, checked without a cluster: every manifest, and every piece of the Helm values that
becomes part of one, is valid against the Kubernetes API's schemas (kubernetes-validate, offline);
the kernel pod that the gateway's own launcher renders from our template is the sandbox it
claims; the values use only settings their chart has; and the files agree with each other.

Helm itself is not run: the Enterprise Gateway chart's templates are read only for the settings
they use (from the gateway's source release, scripts/gateway-venv.sh), and the JupyterHub chart is
not available offline, so its values are checked only where they are Kubernetes objects or our
own server configuration.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from traitlets import TraitError

from jupyter_notebook_agent.sandbox import SANDBOX_KERNEL, choose_kernel
from jupyter_notebook_agent.server.app import NotebookAgent

DEPLOY = Path(__file__).parent.parent / "deploy"
GATEWAY = DEPLOY / "enterprise-gateway"
KERNELSPEC = GATEWAY / "kernelspecs" / SANDBOX_KERNEL
#: The oldest Kubernetes the files are for (NetworkPolicy's endPort is stable from 1.25), and the
#: newest whose schemas kubernetes-validate ships.
VERSIONS = ("1.27", kubernetes_validate.latest_version())


def documents(path: Path) -> list[dict[str, Any]]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


def valid(resource: dict[str, Any]) -> None:
    """Strictly valid (no unknown fields) in every Kubernetes version of VERSIONS."""
    for version in VERSIONS:
        try:
            kubernetes_validate.validate(resource, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            where = "/".join(map(str, error.path))
            raise AssertionError(
                f"{resource['kind']} {resource['metadata'].get('name')} is not valid in "
                f"Kubernetes {version}: {error.message} (at {where})"
            ) from None


def pod(**container: Any) -> dict[str, Any]:
    """A pod around one container's settings, to validate those settings as Kubernetes would."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "piece"},
        "spec": {"containers": [{"name": "piece", "image": "piece", **container}]},
    }


def flat(values: Any, prefix: str = "") -> list[str]:
    """Every leaf's dotted path in a values file."""
    if isinstance(values, dict) and values:
        return [path for key, value in values.items() for path in flat(value, f"{prefix}.{key}")]
    return [prefix.removeprefix(".")]


def manifest(path: Path, kind: str) -> dict[str, Any]:
    (found,) = [document for document in documents(path) if document["kind"] == kind]
    return found


@pytest.fixture(scope="module")
def chart(gateway_venv: Path) -> Path:
    return gateway_venv / "etc" / "kubernetes" / "helm" / "enterprise-gateway"


@pytest.fixture(scope="module")
def gateway_values() -> dict[str, Any]:
    return yaml.safe_load((GATEWAY / "values.yaml").read_text())


@pytest.fixture(scope="module")
def hub_values() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "jupyterhub" / "values.yaml").read_text())


@pytest.fixture(scope="module")
def kernelspec() -> dict[str, Any]:
    return json.loads((KERNELSPEC / "kernel.json").read_text())


@pytest.fixture(scope="module")
def kernel_pod(gateway_venv: Path, gateway_values, kernelspec, tmp_path_factory) -> dict:
    """Our pod template as the gateway renders it: with its own launch_kubernetes.py beside it
    (as build.sh places it), from the values a kernel start gives it, including some a client
    might send to loosen the sandbox."""
    scripts = tmp_path_factory.mktemp("kernelspec")
    launcher = gateway_venv / "etc" / "kernel-launchers" / "kubernetes" / "scripts"
    (scripts / "launch_kubernetes.py").write_text((launcher / "launch_kubernetes.py").read_text())
    template = KERNELSPEC / "scripts" / "kernel-pod.yaml.j2"
    (scripts / "kernel-pod.yaml.j2").write_text(template.read_text())
    keywords = {
        "kernel_id": "0f6b6c2e-2b7e-4ad9-9d3f-5c1e8a7f1d00",
        "kernel_pod_name": "ada-0f6b6c2e-2b7e-4ad9-9d3f-5c1e8a7f1d00",
        "kernel_namespace": "enterprise-gateway",
        "kernel_username": "ada",
        "kernel_image": kernelspec["metadata"]["process_proxy"]["config"]["image_name"],
        "kernel_service_account_name": gateway_values["kernel"]["defaultServiceAccountName"],
        "kernel_uid": "0",
        "kernel_gid": "0",
        "kernel_memory_limit": "64Gi",
        "kernel_volumes": [{"name": "host", "hostPath": {"path": "/"}}],
        "kernel_volume_mounts": [{"name": "host", "mountPath": "/host"}],
    }
    render = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import launch_kubernetes; "
        "print(launch_kubernetes.generate_kernel_pod_yaml(json.loads(sys.argv[2])))"
    )
    rendered = subprocess.run(
        [str(gateway_venv / "bin" / "python"), "-c", render, str(scripts), json.dumps(keywords)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert rendered.returncode == 0, rendered.stderr
    (document,) = [each for each in yaml.safe_load_all(rendered.stdout) if each]
    return document


def test_every_manifest_is_valid_kubernetes():
    manifests = {
        path.relative_to(DEPLOY).as_posix(): documents(path)
        for path in sorted(DEPLOY.rglob("*.yaml"))
        if path.name != "values.yaml"
    }
    assert set(manifests) == {"enterprise-gateway/notebook-agent-kernels.yaml", "vllm/vllm.yaml"}
    kinds = []
    for resources in manifests.values():
        for resource in resources:
            valid(resource)
            kinds.append(resource["kind"])
    assert sorted(kinds) == sorted(
        ["ServiceAccount", "NetworkPolicy", "PersistentVolumeClaim", "Deployment", "Service"]
    )


def test_the_kernel_pod_is_the_sandbox_whatever_the_client_asks(kernel_pod):
    valid(kernel_pod)
    spec = kernel_pod["spec"]
    assert spec["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "runAsGroup": 1000,
        "fsGroup": 1000,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert spec["automountServiceAccountToken"] is False
    assert spec["restartPolicy"] == "Never"
    (container,) = spec["containers"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    limits = container["resources"]["limits"]
    assert set(limits) == {"cpu", "memory", "ephemeral-storage"}
    assert limits["memory"] == "2Gi", "a client's KERNEL_MEMORY_LIMIT must not raise it"
    # The only writable place is its own /tmp, bounded; nothing of the node is mounted.
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert spec["volumes"] == [
        {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "512Mi"}}
    ]
    labels = kernel_pod["metadata"]["labels"]
    assert labels["kernel_id"] == "0f6b6c2e-2b7e-4ad9-9d3f-5c1e8a7f1d00"
    assert labels["component"] == "kernel"  # how the gateway finds its pod


def test_the_gateway_values_use_only_settings_the_chart_has(chart, gateway_values):
    """Helm ignores a setting its chart does not use, silently: a misspelt one would be lost."""
    used = set()
    for template in (chart / "templates").glob("*.yaml"):
        used.update(re.findall(r"\.Values\.([\w.]+)", template.read_text()))
    unknown = [
        path
        for path in flat(gateway_values)
        if not any(path == known or path.startswith(f"{known}.") for known in used)
    ]
    assert unknown == [], f"settings the chart does not use: {unknown}"
    chart_defaults = yaml.safe_load((chart / "values.yaml").read_text())
    assert gateway_values["image"].endswith(":" + str(chart_defaults["image"]).split(":")[-1])


def test_the_pod_settings_in_the_values_are_valid_kubernetes(gateway_values, hub_values):
    valid(pod(resources=gateway_values["deployment"]["resources"]))
    valid(pod(resources=gateway_values["kip"]["resources"]))
    env = [
        {"name": name, "value": value} if isinstance(value, str) else {"name": name, **value}
        for name, value in hub_values["singleuser"]["extraEnv"].items()
    ]
    valid(pod(env=env))
    valid(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "singleuser"},
            "spec": {
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": hub_values["singleuser"]["networkPolicy"]["egress"],
            },
        }
    )


def test_kernels_reach_nothing_but_the_gateway(chart, gateway_values, kernel_pod):
    policy = manifest(GATEWAY / "notebook-agent-kernels.yaml", "NetworkPolicy")
    spec = policy["spec"]
    # It applies to the kernel pods, in the namespace the gateway puts them in.
    assert gateway_values["kernel"]["shareGatewayNamespace"] is True
    assert policy["metadata"]["namespace"] == kernel_pod["metadata"]["namespace"]
    assert spec["podSelector"]["matchLabels"].items() <= kernel_pod["metadata"]["labels"].items()
    assert sorted(spec["policyTypes"]) == ["Egress", "Ingress"]
    # The gateway's pods carry the label the rules name.
    deployment = (chart / "templates" / "deployment.yaml").read_text()
    assert "gateway-selector: enterprise-gateway" in deployment
    gateway_pods = {"podSelector": {"matchLabels": {"gateway-selector": "enterprise-gateway"}}}
    # Out: only to the gateway's response port, where a kernel sends its connection at start.
    chart_defaults = yaml.safe_load((chart / "values.yaml").read_text())
    response_port = chart_defaults["service"]["ports"][1]
    assert response_port["name"] == "http-response"
    assert spec["egress"] == [
        {"to": [gateway_pods], "ports": [{"protocol": "TCP", "port": response_port["port"]}]}
    ]
    # In: only the gateway, only to the kernels' port range.
    lower, upper = map(int, gateway_values["deployment"]["extraEnv"]["EG_PORT_RANGE"].split(".."))
    assert upper - lower >= 1000  # the gateway refuses a smaller range
    assert spec["ingress"] == [
        {"from": [gateway_pods], "ports": [{"protocol": "TCP", "port": lower, "endPort": upper}]}
    ]


def test_the_kernelspec_is_the_agents_sandbox_on_the_gateway(
    gateway_venv, gateway_values, kernelspec, kernel_pod
):
    choice = choose_kernel(None, False, {SANDBOX_KERNEL: {"spec": kernelspec}}, "http://eg:8888")
    assert (choice.name, choice.sandboxed) == (SANDBOX_KERNEL, True)
    assert gateway_values["kernel"]["allowedKernels"] == [SANDBOX_KERNEL]
    assert gateway_values["kernel"]["defaultKernelName"] == SANDBOX_KERNEL
    proxy = kernelspec["metadata"]["process_proxy"]
    module, _, name = proxy["class_name"].rpartition(".")
    source = gateway_venv.glob(f"lib/python*/site-packages/{module.replace('.', '/')}.py")
    assert f"class {name}(" in next(source).read_text()
    # The gateway runs the launcher from where its init container copies this kernelspec.
    assert kernelspec["argv"][1] == (
        f"/usr/local/share/jupyter/kernels/{SANDBOX_KERNEL}/scripts/launch_kubernetes.py"
    )
    # One image for the kernels and for the kernelspecs the gateway copies out of it.
    image = proxy["config"]["image_name"]
    assert (
        gateway_values["kernelspecs"]["image"]
        == image
        == kernel_pod["spec"]["containers"][0]["image"]
    )
    accounts = manifest(GATEWAY / "notebook-agent-kernels.yaml", "ServiceAccount")
    assert accounts["metadata"]["name"] == gateway_values["kernel"]["defaultServiceAccountName"]
    assert accounts["automountServiceAccountToken"] is False


def test_the_hub_servers_use_the_gateway_and_the_teams_model(gateway_values, hub_values):
    singleuser = hub_values["singleuser"]
    env = singleuser["extraEnv"]
    assert env["JUPYTER_GATEWAY_URL"] == "http://enterprise-gateway.enterprise-gateway:8888"
    assert env["KERNEL_LAUNCH_TIMEOUT"] == str(gateway_values["kernel"]["launchTimeout"])
    assert "{username}" in env["KERNEL_USERNAME"]
    (config,) = singleuser["extraFiles"].values()
    assert config["mountPath"].startswith("/etc/jupyter/jupyter_server_config.d/")
    settings = config["data"]
    assert settings["ServerApp"]["jpserver_extensions"] == {"jupyter_notebook_agent": True}
    # Every setting is one the extension and the kernel manager have, of the right type.
    for section, owner in (
        ("NotebookAgent", NotebookAgent),
        ("MappingKernelManager", AsyncMappingKernelManager),
    ):
        traits = owner.class_traits(config=True)
        for name, value in settings[section].items():
            assert name in traits, f"{name} is no setting of {owner.__name__}"
            try:
                traits[name].validate(None, value)
            except TraitError as error:
                raise AssertionError(f"{section}.{name}: {error}") from None
    agent = settings["NotebookAgent"]
    assert agent["kernel_name"] == SANDBOX_KERNEL and agent["allow_unsandboxed"] is False
    # The model the servers ask for is the one vLLM serves, where its Service is.
    vllm = DEPLOY / "vllm" / "vllm.yaml"
    deployment, service = manifest(vllm, "Deployment"), manifest(vllm, "Service")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    served = [a.split("=", 1)[1] for a in container["args"] if a.startswith("--served-model-name")]
    assert agent["model"] == f"openai:{served[0]}"
    (port,) = service["spec"]["ports"]
    where = f"{service['metadata']['name']}.{service['metadata']['namespace']}:{port['port']}"
    assert agent["base_url"] == f"http://{where}/v1"
    # Tool calls are how the agent acts: vLLM must parse them.
    assert "--enable-auto-tool-choice" in container["args"]
    assert any(arg.startswith("--tool-call-parser=") for arg in container["args"])
    # The same key on both sides, from secrets of the same name in their namespaces.
    api_key = next(e for e in container["env"] if e["name"] == "VLLM_API_KEY")
    secret = {"name": "vllm-api-key", "key": "key"}
    assert api_key["valueFrom"]["secretKeyRef"] == secret
    assert env["OPENAI_API_KEY"]["valueFrom"]["secretKeyRef"] == secret
