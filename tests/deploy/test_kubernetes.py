"""deploy/k8s, without a cluster: every built-in resource validates (strict: no unknown
fields) against Kubernetes' own OpenAPI schemas via kubernetes-validate, and the pieces
agree with each other and with the code (labels, ports, Secrets, probe paths, config
settings the env vars name, the database the hub expects).

The CloudNativePG ``Cluster`` is a custom resource: it validates against the schema of
CloudNativePG's own CRD (tests/deploy/schemas, vendored from a release), strict as
``kubectl apply --validate=strict`` is: an unknown or misspelt field is refused."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from national_hub.config import DEFAULT_DATABASE, ENV_PREFIX, HubConfig
from protocol import keys
from server_common import config as config_module

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
KUBERNETES_VERSION = "1.33"
NOT_BUILT_IN = {("kustomize.config.k8s.io/v1beta1", "Kustomization"),
                ("postgresql.cnpg.io/v1", "Cluster")}
# The schema of CloudNativePG's Cluster CRD, from the release the manifest is written for.
CNPG_CLUSTER_SCHEMA = Path(__file__).resolve().parent / "schemas" / "cnpg-1.27.1-cluster-v1.yaml"


def documents() -> list[tuple[str, dict[str, Any]]]:
    return [(path.name, doc) for path in sorted(K8S.glob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def one(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for _, d in documents()
             if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


@pytest.mark.parametrize("name,doc", [d for d in documents()
                                      if (d[1]["apiVersion"], d[1]["kind"]) not in NOT_BUILT_IN],
                         ids=lambda v: v if isinstance(v, str) else "")
def test_built_in_resources_validate_against_the_kubernetes_schema(name: str,
                                                                   doc: dict) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    assert doc["metadata"].get("namespace", "signpost") == "signpost", name


def test_kustomization_lists_every_manifest() -> None:
    listed = one("Kustomization")["resources"]
    assert sorted(listed) == sorted(p.name for p in K8S.glob("*.yaml")
                                    if p.name != "kustomization.yaml")


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """The CRD schema as the API server applies it to a create with strict field
    validation: an object that lists its properties takes no other (the server would
    refuse it, or silently prune it without strict validation). ``metadata`` lists none
    (the server checks it itself); ``x-kubernetes-*`` keys and ``format`` are not JSON
    Schema assertions and are ignored, as Draft 7 ignores unknown keywords."""
    out = {key: value for key, value in schema.items()}
    if "properties" in schema:
        out["properties"] = {name: strict(sub) for name, sub in schema["properties"].items()}
        if "additionalProperties" not in schema \
                and not schema.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            out[key] = strict(schema[key])
    for key in ("anyOf", "allOf", "oneOf"):
        if key in schema:
            out[key] = [strict(sub) for sub in schema[key]]
    return out


def cluster_errors(cluster: dict[str, Any]) -> list[str]:
    schema = yaml.safe_load(CNPG_CLUSTER_SCHEMA.read_text(encoding="utf-8"))["openAPIV3Schema"]
    validator = jsonschema.Draft7Validator(strict(schema))
    return sorted(f"{'.'.join(str(p) for p in e.absolute_path)}: {e.message}"
                  for e in validator.iter_errors(cluster))


def test_postgres_cluster_validates_against_cloudnativepgs_crd_schema() -> None:
    assert cluster_errors(one("Cluster")) == []


@pytest.mark.parametrize("path,value,expected", [
    (["spec", "instance"], 3, "spec: Additional properties are not allowed ('instance'"),
    (["spec", "storage", "sise"], "50Gi", "spec.storage: Additional properties"),
    (["spec", "postgresql", "synchronous", "methd"], "any",
     "spec.postgresql.synchronous: Additional properties"),
    (["spec", "instances"], "3", "spec.instances: '3' is not of type 'integer'"),
    (["spec", "instances"], 0, "spec.instances: 0 is less than the minimum of 1"),
    (["spec", "postgresql", "synchronous", "method"], "all",
     "spec.postgresql.synchronous.method: 'all' is not one of ['any', 'first']"),
    (["spec", "postgresql", "parameters", "max_connections"], 200,
     "spec.postgresql.parameters.max_connections: 200 is not of type 'string'"),
    (["spec", "resources", "limits", "memory"], "2 GiB",
     "spec.resources.limits.memory: '2 GiB' does not match"),
    (["spec", "primaryUpdateStrategy"], "automatic",
     "spec.primaryUpdateStrategy: 'automatic' is not one of"),
], ids=lambda v: ".".join(v) if isinstance(v, list) else "")
def test_cloudnativepgs_schema_refuses_a_misspelt_field_or_a_wrong_value(
        path: list[str], value: Any, expected: str) -> None:
    cluster = copy.deepcopy(one("Cluster"))
    parent = cluster
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    errors = cluster_errors(cluster)
    assert any(e.startswith(expected) for e in errors), errors


def test_cloudnativepgs_schema_requires_the_spec_and_its_instances() -> None:
    cluster = copy.deepcopy(one("Cluster"))
    del cluster["spec"]["instances"]
    assert cluster_errors(cluster) == ["spec: 'instances' is a required property"]
    del cluster["spec"]
    assert cluster_errors(cluster) == [": 'spec' is a required property"]


def test_postgres_cluster_has_a_replica_and_the_hubs_database() -> None:
    cluster = one("Cluster")
    assert cluster["apiVersion"] == "postgresql.cnpg.io/v1"
    spec = cluster["spec"]
    assert isinstance(spec["instances"], int) and spec["instances"] >= 2  # primary + replica
    assert spec["bootstrap"]["initdb"]["database"] == DEFAULT_DATABASE
    assert isinstance(spec["bootstrap"]["initdb"]["owner"], str)
    assert spec["storage"]["size"].endswith("Gi")
    sync = spec["postgresql"]["synchronous"]
    assert sync["method"] in ("any", "first") and 1 <= sync["number"] < spec["instances"]


def hub_deployment() -> dict[str, Any]:
    return one("Deployment", "signpost-hub")


def test_hub_runs_several_probed_limited_replicas() -> None:
    deployment = hub_deployment()
    assert deployment["spec"]["replicas"] >= 2
    pod = deployment["spec"]["template"]
    assert selects(deployment["spec"]["selector"]["matchLabels"], pod["metadata"]["labels"])
    security = pod["spec"]["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] == 10001  # the image's
    for container in pod["spec"]["initContainers"] + pod["spec"]["containers"]:
        assert {"requests", "limits"} <= set(container["resources"]), container["name"]
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
    [hub] = pod["spec"]["containers"]
    assert hub["command"][:2] == ["national-hub", "serve"]
    assert pod["spec"]["initContainers"][0]["command"] == ["national-hub", "db", "upgrade"]
    ports = {p["name"]: p["containerPort"] for p in hub["ports"]}
    assert hub["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert hub["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert hub[probe]["httpGet"]["port"] in ports
        assert hub[probe]["httpGet"]["scheme"] == "HTTPS"  # the hub serves TLS itself

    hpa = one("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert 2 <= hpa["spec"]["minReplicas"] <= deployment["spec"]["replicas"] \
        <= hpa["spec"]["maxReplicas"]
    assert selects(one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
                   pod["metadata"]["labels"])
    service = one("Service", "signpost-hub")
    assert selects(service["spec"]["selector"], pod["metadata"]["labels"])
    assert all(p["targetPort"] in ports for p in service["spec"]["ports"])


def test_hub_env_names_real_settings_and_mounted_secrets() -> None:
    pod = hub_deployment()["spec"]["template"]["spec"]
    [hub] = pod["containers"]
    env = {e["name"]: e for e in hub["env"]}
    # The database URL is CloudNativePG's app Secret for the cluster.
    url = env["NATIONAL_HUB__DATABASE__URL"]["valueFrom"]["secretKeyRef"]
    assert url == {"name": f"{one('Cluster')['metadata']['name']}-app", "key": "uri"}
    # Reads go to the cluster's read-only service, with the app Secret's credentials,
    # through variables defined before they are used ($(VAR) expands only those).
    cluster_name = one("Cluster")["metadata"]["name"]
    read_url = env["NATIONAL_HUB__DATABASE__READ_URL"]["value"]
    assert read_url == f"postgresql://$(DB_USER):$(DB_PASSWORD)@{cluster_name}-ro:5432/" \
                       f"{DEFAULT_DATABASE}"
    order = list(env)
    for var, key in (("DB_USER", "username"), ("DB_PASSWORD", "password")):
        assert env[var]["valueFrom"]["secretKeyRef"] == {"name": f"{cluster_name}-app",
                                                          "key": key}
        assert order.index(var) < order.index("NATIONAL_HUB__DATABASE__READ_URL")
    # Every NATIONAL_HUB__SECTION__KEY is a real, valid setting of the hub's config (one
    # from a Secret, the database URL, stands in as a string).
    settings = {name: e.get("value", "from-a-secret") for name, e in env.items()
                if name.startswith(ENV_PREFIX + "__")}
    config = config_module.load(HubConfig, ENV_PREFIX, None, environ=settings)

    secrets = {d["metadata"]["name"]: d for _, d in documents() if d["kind"] == "Secret"}
    mounted = {}
    volumes = {v["name"]: v for v in pod["volumes"]}
    for mount in hub["volumeMounts"]:
        source = volumes[mount["name"]].get("secret")
        if source:
            data = secrets[source["secretName"]]["stringData"]
            mounted.update({Path(mount["mountPath"]) / key: key for key in data})
    hub_key = config.hub.key_file
    assert hub_key in mounted and keys.public_path_for(hub_key) in mounted
    assert config.tls.cert_file in mounted and config.tls.key_file in mounted
    assert secrets["signpost-hub-tls"]["type"] == "kubernetes.io/tls"


def test_network_policies_let_through_exactly_the_federations_traffic() -> None:
    policies = {d["metadata"]["name"]: d["spec"] for _, d in documents()
                if d["kind"] == "NetworkPolicy"}
    deny = policies["default-deny"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny

    pod = hub_deployment()["spec"]["template"]
    [container] = pod["spec"]["containers"]
    hub_port = container["ports"][0]["containerPort"]
    cluster = {"cnpg.io/cluster": one("Cluster")["metadata"]["name"]}
    hub = next(p for p in policies.values() if p["podSelector"]
               and selects(p["podSelector"]["matchLabels"], pod["metadata"]["labels"]))
    assert [port["port"] for rule in hub["ingress"] for port in rule["ports"]] == [hub_port]
    to_db = [rule for rule in hub["egress"]
             if any(peer.get("podSelector", {}).get("matchLabels") == cluster
                    for peer in rule.get("to", []))]
    assert [port["port"] for rule in to_db for port in rule["ports"]] == [5432]

    db = next(p for p in policies.values() if p["podSelector"].get("matchLabels") == cluster)
    from_hub = [rule for rule in db["ingress"]
                if any(selects(peer.get("podSelector", {}).get("matchLabels", {"-": "-"}),
                               pod["metadata"]["labels"]) for peer in rule["from"])]
    assert [port["port"] for rule in from_hub for port in rule["ports"]] == [5432]
