"""The Kubernetes deployment (deploy/): files that parse, Helm values the chart accepts, manifests
that validate against the Kubernetes API schema, and the step pods dagster-k8s itself builds from
the assets' op tags. No cluster, Docker or network: the real libraries check the files."""

import json
import re
import shlex
import subprocess
import sys
import types
from pathlib import Path

import dagster as dg
import kubernetes
import kubernetes_validate
import pytest
import yaml
from dagster_k8s import K8sRunLauncher, k8s_job_executor
from dagster_k8s.container_context import K8sContainerContext
from dagster_k8s.job import (
    UserDefinedDagsterK8sConfig,
    construct_dagster_k8s_job,
    get_user_defined_k8s_config,
)

from stock_platform.defs.stock_prices.cleaning import clean_stock_prices
from stock_platform.defs.stock_prices.ingestion import raw_stock_prices
from stock_platform.defs.stock_prices.marts import stock_analytics_dbt
from stock_platform.defs.stock_prices.warehouse import daily_prices
from stock_platform.platform.k8s import k8s_op_tags, kubernetes_spark_config
from stock_platform.platform.resources import build_executor
from stock_platform.platform.settings import REPO_ROOT, PlatformSettings, SettingsError, parse
from stock_platform.platform.spark import SESSION_CONFIG

DEPLOY = REPO_ROOT / "deploy"
VALUES = yaml.safe_load((DEPLOY / "helm" / "values.yaml").read_text())
# GKE's regular release channel; the schemas ship with kubernetes-validate.
K8S_VERSION = "1.33.0"
NAMESPACE = "stock-platform"


def manifests() -> list[dict]:
    return [
        doc
        for path in sorted((DEPLOY / "k8s").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


def manifest(kind: str, name: str) -> dict:
    found = [d for d in manifests() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"deploy/k8s/ has {len(found)} {kind} named {name}"
    return found[0]


def test_every_deploy_yaml_parses():
    paths = sorted(DEPLOY.rglob("*.yaml"))
    assert len(paths) >= 6
    for path in paths:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        assert docs and all(isinstance(d, dict) for d in docs), path


# ---- Helm values ---------------------------------------------------------------------------------
# Key names accepted by the official chart (dagster/dagster), from its values schema: the pydantic
# models in dagster-io/dagster helm/dagster/schema/schema/charts/ (DagsterHelmValues,
# subschema/{webserver,daemon,run_launcher,postgresql,service_account,global_}.py and
# dagster_user_deployments/subschema/user_deployments.py), which generate values.schema.json.
# A dict is a node whose keys we check (recursively); None is a value we do not descend into
# (free-form Kubernetes objects, or leaves). Only what our values use (or nearly use) is listed.
_OPEN = None
CHART_KEYS = {
    "global": {"postgresqlSecretName": _OPEN, "dagsterHome": _OPEN, "serviceAccountName": _OPEN,
               "celeryConfigSecretName": _OPEN},
    "serviceAccount": {"create": _OPEN, "name": _OPEN, "annotations": _OPEN},
    "dagsterWebserver": {
        "replicaCount": _OPEN, "image": _OPEN, "service": _OPEN, "workspace": _OPEN,
        "env": _OPEN, "envConfigMaps": _OPEN, "envSecrets": _OPEN, "resources": _OPEN,
        "nodeSelector": _OPEN, "tolerations": _OPEN, "affinity": _OPEN, "annotations": _OPEN,
        "labels": _OPEN, "enableReadOnly": _OPEN, "logLevel": _OPEN,
        "podSecurityContext": _OPEN, "securityContext": _OPEN, "readinessProbe": _OPEN,
        "livenessProbe": _OPEN, "startupProbe": _OPEN,
    },
    "dagster-user-deployments": {
        "enabled": _OPEN, "enableSubchart": _OPEN, "imagePullSecrets": _OPEN,
        "serviceAccount": {"create": _OPEN, "name": _OPEN, "annotations": _OPEN},
        "deployments": [{
            "name": _OPEN, "image": {"repository": _OPEN, "tag": _OPEN, "pullPolicy": _OPEN},
            "dagsterApiGrpcArgs": _OPEN, "codeServerArgs": _OPEN, "port": _OPEN,
            "includeConfigInLaunchedRuns": {"enabled": _OPEN},
            "env": _OPEN, "envConfigMaps": _OPEN, "envSecrets": _OPEN, "resources": _OPEN,
            "nodeSelector": _OPEN, "tolerations": _OPEN, "affinity": _OPEN,
            "annotations": _OPEN, "labels": _OPEN, "podSecurityContext": _OPEN,
            "securityContext": _OPEN, "volumes": _OPEN, "volumeMounts": _OPEN,
            "readinessProbe": _OPEN, "livenessProbe": _OPEN, "startupProbe": _OPEN,
        }],
    },
    "runLauncher": {
        "type": _OPEN,
        "config": {"k8sRunLauncher": {
            "image": _OPEN, "imagePullPolicy": _OPEN, "jobNamespace": _OPEN,
            "loadInclusterConfig": _OPEN, "kubeconfigFile": _OPEN, "envConfigMaps": _OPEN,
            "envSecrets": _OPEN, "envVars": _OPEN, "volumeMounts": _OPEN, "volumes": _OPEN,
            "labels": _OPEN, "failPodOnRunFailure": _OPEN, "resources": _OPEN,
            "schedulerName": _OPEN, "securityContext": _OPEN,
            "runK8sConfig": {"containerConfig": _OPEN, "podSpecConfig": _OPEN,
                             "podTemplateSpecMetadata": _OPEN, "jobSpecConfig": _OPEN,
                             "jobMetadata": _OPEN},
        }},
    },
    "postgresql": {"enabled": _OPEN, "image": _OPEN, "postgresqlHost": _OPEN,
                   "postgresqlUsername": _OPEN, "postgresqlPassword": _OPEN,
                   "postgresqlDatabase": _OPEN, "postgresqlParams": _OPEN,
                   "postgresqlScheme": _OPEN, "service": {"port": _OPEN}},
    "generatePostgresqlPasswordSecret": _OPEN,
    "dagsterDaemon": {
        "enabled": _OPEN, "image": _OPEN, "heartbeatTolerance": _OPEN, "env": _OPEN,
        "envConfigMaps": _OPEN, "envSecrets": _OPEN, "resources": _OPEN, "nodeSelector": _OPEN,
        "tolerations": _OPEN, "affinity": _OPEN, "annotations": _OPEN, "labels": _OPEN,
        "runRetries": _OPEN, "sensors": _OPEN, "schedules": _OPEN,
        "podSecurityContext": _OPEN, "securityContext": _OPEN, "livenessProbe": _OPEN,
        "readinessProbe": _OPEN, "startupProbe": _OPEN,
        "runCoordinator": {
            "enabled": _OPEN, "type": _OPEN,
            "config": {"queuedRunCoordinator": {
                "maxConcurrentRuns": _OPEN, "tagConcurrencyLimits": _OPEN,
                "dequeueIntervalSeconds": _OPEN, "dequeueNumWorkers": _OPEN,
                "dequeueUseThreads": _OPEN,
                "blockOpConcurrencyLimitedRuns": {"enabled": _OPEN, "opConcurrencySlotBuffer": _OPEN},
            }},
        },
        # Free-form in the schema (Dict[str, Any]); the chart's instance template reads these.
        "runMonitoring": {"enabled": _OPEN, "startTimeoutSeconds": _OPEN,
                          "pollIntervalSeconds": _OPEN, "maxResumeRunAttempts": _OPEN,
                          "cancelTimeoutSeconds": _OPEN, "maxRuntimeSeconds": _OPEN},
    },
    "computeLogManager": _OPEN, "ingress": _OPEN, "imagePullSecrets": _OPEN,
    "pythonLogs": _OPEN, "retention": _OPEN, "telemetry": {"enabled": _OPEN},
    "additionalInstanceConfig": _OPEN, "rbacEnabled": _OPEN,
}


def unknown_keys(values, accepted, path="") -> list[str]:
    if accepted is None:
        return []
    if isinstance(accepted, list):
        assert isinstance(values, list), f"{path} must be a list"
        return [bad for i, item in enumerate(values)
                for bad in unknown_keys(item, accepted[0], f"{path}[{i}]")]
    assert isinstance(values, dict), f"{path} must be a mapping"
    bad = [f"{path}.{key}".lstrip(".") for key in values if key not in accepted]
    return bad + [b for key, value in values.items() if key in accepted
                  for b in unknown_keys(value, accepted[key], f"{path}.{key}")]


def test_helm_values_use_only_chart_keys():
    assert unknown_keys(VALUES, CHART_KEYS) == []
    # The legacy names the chart dropped must not come back.
    assert not {"dagit", "userDeployments", "k8sRunLauncher"} & set(VALUES)


def test_unknown_keys_catches_a_misspelt_key():
    broken = {"runLauncher": {"type": "K8sRunLauncher",
                              "config": {"k8sRunLauncher": {"runK8sConfig": {"containerconfig": {}}}}}}
    assert unknown_keys(broken, CHART_KEYS) == [
        "runLauncher.config.k8sRunLauncher.runK8sConfig.containerconfig"]


def user_deployment() -> dict:
    deployments = VALUES["dagster-user-deployments"]["deployments"]
    assert len(deployments) == 1
    return deployments[0]


def test_helm_values_types_and_wiring():
    assert VALUES["runLauncher"]["type"] == "K8sRunLauncher"
    coordinator = VALUES["dagsterDaemon"]["runCoordinator"]
    assert coordinator["enabled"] is True and coordinator["type"] == "QueuedRunCoordinator"
    assert VALUES["dagsterDaemon"]["runMonitoring"]["enabled"] is True
    assert VALUES["postgresql"]["enabled"] is False  # external Cloud SQL
    assert VALUES["generatePostgresqlPasswordSecret"] is False
    assert manifest("Secret", VALUES["global"]["postgresqlSecretName"])["stringData"]["postgresql-password"]

    deployment = user_deployment()
    assert deployment["name"] == "stock-platform" and isinstance(deployment["port"], int)
    assert deployment["codeServerArgs"] == ["-m", "stock_platform.definitions"]
    assert all(isinstance(arg, str) for arg in deployment["codeServerArgs"])
    launcher = VALUES["runLauncher"]["config"]["k8sRunLauncher"]
    # Env comes from the ConfigMap and Secret of deploy/k8s/, with the contract's variables: the
    # settings for the code server and the runs, the secrets for the runs only.
    assert deployment["envConfigMaps"] == launcher["envConfigMaps"]
    assert "envSecrets" not in deployment
    config_map = manifest("ConfigMap", deployment["envConfigMaps"][0]["name"])["data"]
    assert config_map["STOCK_PLATFORM_ENV"] == "gcp"
    for name in ["GCP_PROJECT", "BQ_LOCATION", "GCS_LAKE_URI", "BQ_RAW_DATASET",
                 "BQ_ANALYTICS_DATASET", "SPARK_RUNNER", "WEB_LOGS_URI",
                 "BQ_WEB_RAW_DATASET", "BQ_WEB_ANALYTICS_DATASET", "SERVING_CLOUDSQL_INSTANCE"]:
        assert config_map.get(name), name
    assert config_map["GCS_LAKE_URI"].startswith("gs://")
    assert len(config_map["SERVING_CLOUDSQL_INSTANCE"].split(":")) == 3  # project:region:instance
    assert "SERVING_DATABASE_URL" not in config_map  # a URL may hold a password: a Secret
    assert all(isinstance(v, str) for v in config_map.values())  # ConfigMap data is strings
    secret = manifest("Secret", launcher["envSecrets"][0]["name"])
    assert set(secret["stringData"]) == {"DATA_GO_KR_SERVICE_KEY", "WEB_IP_SALT"}
    assert "DATA_GO_KR_SERVICE_KEY" not in config_map and "WEB_IP_SALT" not in config_map

    # Two Workload Identity service accounts, created outside the chart: the data identity for
    # runs, steps and Spark; another, without data access, for the webserver, daemon and code server.
    assert VALUES["serviceAccount"]["create"] is False
    assert VALUES["dagster-user-deployments"]["serviceAccount"]["create"] is False
    assert VALUES["rbacEnabled"] is False  # the chart's Role lets every pod create pods
    control = VALUES["global"]["serviceAccountName"]
    runs = launcher["runK8sConfig"]["podSpecConfig"]["serviceAccountName"]
    identity = lambda name: manifest("ServiceAccount", name)["metadata"]["annotations"][  # noqa: E731
        "iam.gke.io/gcp-service-account"]
    for name in (control, runs):
        assert re.fullmatch(r"[a-z][-a-z0-9]*@[-A-Za-z0-9_]+\.iam\.gserviceaccount\.com", identity(name))
    assert identity(runs).startswith("stock-platform@") and identity(control) != identity(runs)
    assert parse(PlatformSettings, {}).spark_k8s_service_account == runs
    assert config_map["SPARK_K8S_SERVICE_ACCOUNT"] == runs
    for role, account in (("dagster-launcher", control), ("stock-platform-runs", runs)):
        assert manifest("RoleBinding", role)["subjects"] == [
            {"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}]


def rules(role: str) -> dict[str, set[str]]:
    return {f"{group or 'core'}/{resource}": set(rule["verbs"])
            for rule in manifest("Role", role)["rules"]
            for group in rule["apiGroups"] for resource in rule["resources"]}


def test_rbac_grants_only_what_launching_runs_and_spark_executors_need():
    # The daemon launches and watches run Jobs; it creates no pods.
    assert rules("dagster-launcher") == {
        "batch/jobs": {"create", "get", "list", "watch", "delete"},
        "core/pods": {"get", "list", "watch"}, "core/pods/log": {"get"}}
    # A run launches step Jobs; the Spark driver creates its executor pods and their ConfigMap.
    # No services or volume claims (client mode makes none), no patch or update.
    assert rules("stock-platform-runs") == {
        "batch/jobs": {"create", "get", "list", "watch", "delete"},
        "core/pods": {"create", "get", "list", "watch", "delete", "deletecollection"},
        "core/pods/log": {"get"},
        "core/configmaps": {"create", "get", "list", "watch", "delete", "deletecollection"}}
    assert all(role["metadata"]["name"] in {"dagster-launcher", "stock-platform-runs"}
               for role in manifests() if role["kind"] in {"Role", "ClusterRole"})


def restricted(pod_security: dict, container_security: dict) -> bool:
    """What Pod Security's `restricted` level requires of a pod and its container."""
    return (pod_security.get("runAsNonRoot") is True and pod_security.get("runAsUser", 0) != 0
            and pod_security.get("seccompProfile", {}).get("type") == "RuntimeDefault"
            and container_security.get("allowPrivilegeEscalation") is False
            and container_security.get("capabilities", {}).get("drop") == ["ALL"])


def test_every_pod_is_hardened_for_the_restricted_pod_security_level():
    labels = manifest("Namespace", NAMESPACE)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    webserver, daemon = VALUES["dagsterWebserver"], VALUES["dagsterDaemon"]
    for component in (webserver, daemon, user_deployment()):
        assert restricted(component["podSecurityContext"], component["securityContext"])
    run_config = VALUES["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]
    assert restricted(run_config["podSpecConfig"]["securityContext"],
                      run_config["containerConfig"]["securityContext"])
    executor = yaml.safe_load((DEPLOY / "spark-executor-pod.yaml").read_text())
    assert restricted(executor["spec"]["securityContext"], executor["spec"]["containers"][0]["securityContext"])
    # The chart's default webserver and daemon images run as root: they run this image (USER 10001).
    assert webserver["image"] == daemon["image"] == user_deployment()["image"]
    # A non-root process without capabilities cannot bind port 80.
    assert webserver["service"]["port"] >= 1024
    # Analysts get a second, read-only webserver.
    assert webserver["enableReadOnly"] is True


def test_health_probes():
    webserver, daemon = VALUES["dagsterWebserver"], VALUES["dagsterDaemon"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert webserver[probe]["httpGet"] == {"path": "/server_info", "port": webserver["service"]["port"]}
    assert daemon["livenessProbe"]["exec"]["command"] == ["dagster-daemon", "liveness-check"]
    # The chart fills in `dagster api grpc-health-check` when a probe has no exec of its own.
    assert "exec" not in user_deployment()["livenessProbe"] and user_deployment()["livenessProbe"]["periodSeconds"]


def test_network_policies_admit_spark_traffic_on_its_fixed_ports_only():
    docs = {d["metadata"]["name"]: d["spec"] for d in manifests() if d["kind"] == "NetworkPolicy"}
    assert docs["default-deny-ingress"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    config = kubernetes_spark_config(parse(PlatformSettings, SPARK_ENV))
    driver = docs["spark-driver-from-its-executors"]
    tags = json.loads(clean_stock_prices.op.tags["dagster-k8s/config"])
    assert driver["podSelector"]["matchLabels"].items() <= tags["pod_template_spec_metadata"]["labels"].items()
    assert {p["port"] for p in driver["ingress"][0]["ports"]} == {
        int(config["spark.driver.port"]), int(config["spark.blockManager.port"])}
    executor_label = {"app": config["spark.kubernetes.executor.label.app"]}
    assert driver["ingress"][0]["from"] == [{"podSelector": {"matchLabels": executor_label}}]
    assert docs["spark-executors-from-their-driver"]["podSelector"]["matchLabels"] == executor_label
    webserver = docs["webserver-from-the-load-balancer"]
    port = VALUES["dagsterWebserver"]["service"]["port"]
    assert webserver["ingress"][0]["ports"] == [{"protocol": "TCP", "port": port}]
    assert docs["code-server-from-the-namespace"]["ingress"][0]["ports"] == [
        {"protocol": "TCP", "port": user_deployment()["port"]}]


KUBECONFIG = """
apiVersion: v1
kind: Config
clusters: [{name: gke, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: dagster, user: {token: unused}}]
contexts: [{name: gke, context: {cluster: gke, user: dagster}}]
current-context: gke
"""


def chart_instance_yaml(folder: Path, postgres: dict | None = None) -> Path:
    """The instance's dagster.yaml the chart renders from these values (templates/helpers/
    instance/*.tpl, configmap-instance.yaml), written to `folder`. The launcher reads a local
    kubeconfig instead of the in-cluster one (nothing connects). With `postgres` (hostname, port,
    params of a real server), the storage section too, as the chart writes it for
    `postgresql:` (_postgresql.tpl)."""
    queue = VALUES["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    block = queue["blockOpConcurrencyLimitedRuns"]
    monitoring = VALUES["dagsterDaemon"]["runMonitoring"]
    logs = VALUES["computeLogManager"]["config"]["gcsComputeLogManager"]
    retention = VALUES["retention"]
    snake = lambda name: re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()  # noqa: E731
    (folder / "kubeconfig").write_text(KUBECONFIG)
    instance = {
        "run_coordinator": {"module": "dagster", "class": "QueuedRunCoordinator", "config": {
            "max_concurrent_runs": queue["maxConcurrentRuns"],
            "tag_concurrency_limits": queue["tagConcurrencyLimits"],
            "block_op_concurrency_limited_runs": {
                "enabled": block["enabled"], "op_concurrency_slot_buffer": block["opConcurrencySlotBuffer"],
            },
        }},
        "run_launcher": {"module": "dagster_k8s", "class": "K8sRunLauncher", "config": {
            **run_launcher_values(), "instance_config_map": "dagster-instance",
            "dagster_home": "/opt/dagster/dagster_home", "load_incluster_config": False,
            "kubeconfig_file": str(folder / "kubeconfig"),
        }},
        "run_monitoring": {snake(k): v for k, v in monitoring.items()},
        "compute_logs": {"module": "dagster_gcp.gcs.compute_log_manager", "class": "GCSComputeLogManager",
                         "config": {snake(k): v for k, v in logs.items()}},
        "retention": {snake(kind): {"purge_after_days": retention[kind]["purgeAfterDays"]}
                      for kind in ("schedule", "sensor", "autoMaterialize")},
    }
    if postgres is not None:
        database = VALUES["postgresql"]
        instance["storage"] = {"postgres": {"postgres_db": {
            "username": database["postgresqlUsername"], "password": {"env": "DAGSTER_PG_PASSWORD"},
            "hostname": postgres["hostname"], "db_name": database["postgresqlDatabase"],
            "port": postgres["port"], "params": postgres.get("params", {}),
            "scheme": database["postgresqlScheme"],
        }}}
    (folder / "dagster.yaml").write_text(yaml.safe_dump(instance))
    return folder


def test_instance_config_rendered_from_values_is_valid_for_dagster(tmp_path):
    """Loading it as a Dagster instance checks each section with dagster's, dagster-k8s's and
    dagster-gcp's own config schemas. (tests/integration/test_production_instance.py loads it
    with the storage, against a real PostgreSQL.)"""
    with dg.DagsterInstance.from_config(str(chart_instance_yaml(tmp_path))) as instance:
        assert isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)
        assert isinstance(instance.run_launcher, K8sRunLauncher)
        assert instance.run_monitoring_enabled
        assert instance.get_settings("retention")["schedule"]["purge_after_days"] == 90


def test_an_invalid_instance_value_is_rejected(tmp_path):
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump({"run_coordinator": {
        "module": "dagster", "class": "QueuedRunCoordinator", "config": {"max_concurrent_runs": "many"}}}))
    with (pytest.raises(dg.DagsterInvalidConfigError),
          dg.DagsterInstance.from_config(str(tmp_path)) as instance):
        instance.run_coordinator  # noqa: B018 (the config is checked when it is built)


def run_launcher_values() -> dict:
    """runLauncher.config.k8sRunLauncher as the chart writes it into the instance config."""
    launcher = VALUES["runLauncher"]["config"]["k8sRunLauncher"]
    names = {"containerConfig": "container_config", "podSpecConfig": "pod_spec_config",
             "podTemplateSpecMetadata": "pod_template_spec_metadata",
             "jobSpecConfig": "job_spec_config", "jobMetadata": "job_metadata"}
    return {
        "image_pull_policy": launcher["imagePullPolicy"],
        "service_account_name": VALUES["global"]["serviceAccountName"],
        "job_namespace": NAMESPACE,
        "env_config_maps": [source["name"] for source in launcher["envConfigMaps"]],
        "env_secrets": [source["name"] for source in launcher["envSecrets"]],
        "run_k8s_config": {names[k]: v for k, v in launcher["runK8sConfig"].items()},
    }


# ---- raw manifests --------------------------------------------------------------------------------


def test_raw_manifests_validate_against_kubernetes_schema():
    docs = manifests()
    assert {d["kind"] for d in docs} >= {"Namespace", "ServiceAccount", "ConfigMap", "Secret",
                                          "Role", "RoleBinding"}
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == NAMESPACE


def test_kubernetes_validate_rejects_a_broken_manifest():
    broken = manifest("ConfigMap", "stock-platform-env") | {"datta": {}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


# ---- step pods as dagster-k8s builds them ----------------------------------------------------------

IMAGE = "asia-northeast3-docker.pkg.dev/p/stock/stock-platform:abc123"
STEPS = {
    "raw_stock_prices": raw_stock_prices,
    "clean_stock_prices": clean_stock_prices,
    "daily_prices": daily_prices,
    "stock_analytics_dbt": stock_analytics_dbt,
}


def code_location_context(deployment: dict) -> K8sContainerContext:
    """The container context the chart gives the code server for its runs
    (dagster-user-deployments, helpers `dagsterUserDeployments.k8sContainerContext`): with
    includeConfigInLaunchedRuns, the deployment's env sources and its `resources` among others;
    without, nothing."""
    if not deployment.get("includeConfigInLaunchedRuns", {"enabled": True})["enabled"]:
        return K8sContainerContext()
    return K8sContainerContext(
        env_config_maps=[source["name"] for source in deployment.get("envConfigMaps", [])],
        env_secrets=[source["name"] for source in deployment.get("envSecrets", [])],
        resources=deployment.get("resources"),
    )


def step_job(op_tags: dict[str, str], step_key: str, deployment: dict | None = None) -> kubernetes.client.V1Job:
    """What K8sStepHandler.launch_step (dagster_k8s/executor.py) creates for a step: the run
    launcher's context (Helm runLauncher config), merged with the code location's (what the chart
    passes from the user deployment), merged with the step's op tags."""
    launcher = run_launcher_values()
    context = (
        K8sContainerContext(
            image_pull_policy=launcher["image_pull_policy"],
            service_account_name=launcher["service_account_name"],
            namespace=launcher["job_namespace"],
            env_config_maps=launcher["env_config_maps"],
            env_secrets=launcher["env_secrets"],
            run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(launcher["run_k8s_config"]),
        )
        .merge(code_location_context(deployment or user_deployment()))
        .merge(K8sContainerContext(run_k8s_config=get_user_defined_k8s_config(op_tags)))
    )
    run_launcher = types.SimpleNamespace(
        job_image=None, dagster_home="/opt/dagster/dagster_home",
        instance_config_map="dagster-instance",
        postgres_password_secret=VALUES["global"]["postgresqlSecretName"],
    )
    job_config = context.get_k8s_job_config(IMAGE, run_launcher)
    return construct_dagster_k8s_job(
        job_config=job_config,
        args=["dagster", "api", "execute_step"],
        job_name=f"dagster-step-{step_key.replace('_', '-')}",
        component="step_worker",
        user_defined_k8s_config=context.run_k8s_config,
        labels={"dagster/op": step_key},
    )


@pytest.mark.parametrize("step", sorted(STEPS))
def test_step_pod_built_by_dagster_k8s_from_op_tags(step):
    assets_def = STEPS[step]
    job = step_job(assets_def.op.tags, assets_def.op.name)
    pod = job.spec.template.spec
    (container,) = pod.containers
    # The step's own resources (its op tags) replace the Helm defaults of run pods.
    expected = json.loads(assets_def.op.tags["dagster-k8s/config"])["container_config"]["resources"]
    assert container.resources.requests == expected["requests"]
    assert container.resources.limits == expected["limits"]
    assert container.image == IMAGE
    assert pod.service_account_name == "stock-platform-runs"
    assert restricted(kubernetes.client.ApiClient().sanitize_for_serialization(pod.security_context),
                      kubernetes.client.ApiClient().sanitize_for_serialization(container.security_context))
    assert job.spec.ttl_seconds_after_finished == 3600
    assert job.spec.backoff_limit == 0
    sources = {(s.config_map_ref or s.secret_ref).name for s in container.env_from}
    assert sources == {"stock-platform-env", "stock-platform-secrets"}
    env = {e.name: e for e in container.env}
    assert "DAGSTER_PG_PASSWORD" in env
    if step == "clean_stock_prices":
        # The Spark driver: on the Spark node pool, labelled for the NetworkPolicy.
        assert pod.node_selector == {"cloud.google.com/gke-nodepool": "spark"}
        assert [t.key for t in pod.tolerations] == ["dedicated"]
        assert job.spec.template.metadata.labels["stock-platform/spark-driver"] == "true"
        assert env["POD_IP"].value_from.field_ref.field_path == "status.podIP"
        assert env["POD_NAME"].value_from.field_ref.field_path == "metadata.name"
        assert env["POD_NAMESPACE"].value_from.field_ref.field_path == "metadata.namespace"
    else:
        assert "POD_IP" not in env
    # What dagster-k8s would send to the API server is a valid batch/v1 Job.
    body = kubernetes.client.ApiClient().sanitize_for_serialization(job)
    kubernetes_validate.validate(body, K8S_VERSION, strict=True)


def test_run_pod_without_op_tags_gets_the_run_defaults_not_the_code_servers_size():
    defaults = VALUES["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]["containerConfig"]
    assert user_deployment()["resources"] != defaults["resources"]  # else this test shows nothing
    job = step_job({}, "run")
    (container,) = job.spec.template.spec.containers
    assert container.resources.requests == defaults["resources"]["requests"]
    assert container.resources.limits == defaults["resources"]["limits"]
    # What this guards against: with includeConfigInLaunchedRuns the chart copies the code
    # server's resources into every run, and they win over the run launcher's defaults.
    copying = {**user_deployment(), "includeConfigInLaunchedRuns": {"enabled": True}}
    (container,) = step_job({}, "run", copying).spec.template.spec.containers
    assert container.resources.requests == user_deployment()["resources"]["requests"]


def test_gcp_runs_each_step_in_its_own_pod():
    assert build_executor(parse(PlatformSettings, {"STOCK_PLATFORM_ENV": "gcp"})) is k8s_job_executor
    assert build_executor(parse(PlatformSettings, {})) is dg.in_process_executor


def test_op_tags_give_the_pod_its_resources_and_a_spark_driver_its_address():
    plain = json.loads(k8s_op_tags(cpu="500m", cpu_limit="1", memory="1Gi")["dagster-k8s/config"])
    assert plain == {"container_config": {"resources": {
        "requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}}}}
    driver = k8s_op_tags(cpu="2", cpu_limit="4", memory="8Gi", spark_driver=True)["dagster-k8s/config"]
    driver = json.loads(driver)
    assert driver["pod_spec_config"]["node_selector"] == {"cloud.google.com/gke-nodepool": "spark"}
    env = driver["container_config"]["env"]
    assert {e["name"]: e["valueFrom"]["fieldRef"]["fieldPath"] for e in env} == {
        "POD_IP": "status.podIP", "POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace"}


# ---- Spark on Kubernetes ----------------------------------------------------------------------------

SPARK_ENV = {
    "STOCK_PLATFORM_ENV": "gcp",
    "GCP_PROJECT": "stock-prod",
    "SPARK_K8S_IMAGE": IMAGE,
    "POD_IP": "10.8.0.12",
    "POD_NAME": "dagster-step-0f3a9c",
    "POD_NAMESPACE": NAMESPACE,
    "SPARK_EXECUTOR_INSTANCES": "6",
}


def test_kubernetes_spark_config_comes_from_the_pod_and_the_settings():
    config = kubernetes_spark_config(parse(PlatformSettings, SPARK_ENV))
    # The driver runs in the step pod (client mode) and is reachable at its pod IP; executors are
    # pods of the same image, namespace and service account, owned by the driver pod.
    assert config["spark.master"] == "k8s://https://kubernetes.default.svc"
    assert config["spark.submit.deployMode"] == "client"
    assert config["spark.kubernetes.namespace"] == NAMESPACE
    assert config["spark.kubernetes.container.image"] == IMAGE
    assert config["spark.kubernetes.driver.pod.name"] == "dagster-step-0f3a9c"
    assert config["spark.driver.host"] == "10.8.0.12"
    assert config["spark.executor.instances"] == "6"
    assert config["spark.executor.cores"] == "2" and config["spark.executor.memory"] == "4g"  # defaults
    assert config["spark.kubernetes.executor.podNamePrefix"] == "dagster-step-0f3a9c"  # Spark adds -exec-N
    assert config["spark.hadoop.fs.gs.project.id"] == "stock-prod"
    assert config["spark.hadoop.fs.gs.auth.type"] == "APPLICATION_DEFAULT"  # not the legacy alias
    assert not [key for key in config if key.startswith("spark.hadoop.google.cloud.")]
    # The driver JVM (in the 8Gi cleaning pod) gets more than Spark's 1g default; executors get
    # room outside the heap for the parsers' Python workers.
    assert config["spark.driver.memory"] == "6g" and config["spark.executor.memoryOverhead"] == "2g"
    # Executors on the Spark node pool, hardened and tolerating its taint by their pod template,
    # which the image holds at that path.
    assert config["spark.kubernetes.node.selector.cloud.google.com/gke-nodepool"] == "spark"
    template = config["spark.kubernetes.executor.podTemplateFile"]
    assert ("COPY", f"deploy/{Path(template).name} {template}") in dockerfile_instructions()
    # The session settings the transforms rely on hold on Kubernetes too.
    assert SESSION_CONFIG.items() <= config.items()
    # The executors' service account is the one bound to the runs' RBAC role.
    assert manifest("RoleBinding", "stock-platform-runs")["subjects"][0]["name"] == \
        config["spark.kubernetes.authenticate.executor.serviceAccountName"]


def test_executors_run_the_image_of_the_run():
    run_image = "asia-northeast3-docker.pkg.dev/p/stock/stock-platform:def456"
    config = kubernetes_spark_config(parse(PlatformSettings, SPARK_ENV), run_image)
    assert config["spark.kubernetes.container.image"] == run_image
    without_setting = {k: v for k, v in SPARK_ENV.items() if k != "SPARK_K8S_IMAGE"}
    assert kubernetes_spark_config(parse(PlatformSettings, without_setting), run_image)[
        "spark.kubernetes.container.image"] == run_image
    # A NetworkPolicy admits executor -> driver traffic on fixed ports only.
    assert config["spark.driver.port"].isdigit() and config["spark.blockManager.port"].isdigit()


def test_a_long_pod_name_still_gives_a_valid_executor_pod_name():
    pod_name = "dagster-step-" + "a" * 50
    config = kubernetes_spark_config(parse(PlatformSettings, {**SPARK_ENV, "POD_NAME": pod_name}))
    executor_pod = f"{config['spark.kubernetes.executor.podNamePrefix']}-exec-1000"
    assert "-exec-exec-" not in executor_pod
    assert len(executor_pod) <= 63 and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", executor_pod)


@pytest.mark.parametrize("missing", ["SPARK_K8S_IMAGE", "POD_IP", "POD_NAME", "POD_NAMESPACE",
                                     "GCP_PROJECT"])
def test_kubernetes_spark_config_names_a_missing_variable(missing):
    settings = parse(PlatformSettings, {k: v for k, v in SPARK_ENV.items() if k != missing})
    with pytest.raises(SettingsError, match=f"^{missing} is not set; it is required for Spark on Kubernetes"):
        kubernetes_spark_config(settings)


# ---- image ----------------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    # As Docker reads it: comment lines dropped (also inside continuations), then lines joined.
    lines = [line for line in (DEPLOY / "Dockerfile").read_text().splitlines()
             if not line.lstrip().startswith("#")]
    joined = "\n".join(lines).replace("\\\n", " ")
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip())
            for line in joined.splitlines() if line.strip()]


def test_dockerfile_has_the_required_instructions():
    instructions = dockerfile_instructions()
    by_kind = lambda kind: [args for k, args in instructions if k == kind]  # noqa: E731
    runs = " ".join(by_kind("RUN"))
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", by_kind("FROM")[0])
    assert "openjdk-17-jre-headless" in runs
    assert re.search(r"https://repo1\.maven\.org/maven2/com/google/cloud/bigdataoss/gcs-connector/"
                     r"\$\{GCS_CONNECTOR_VERSION\}/gcs-connector-\$\{GCS_CONNECTOR_VERSION\}-shaded\.jar",
                     runs)
    assert "uv sync --frozen --no-dev" in runs
    # The dbt manifest is prepared at build time from the file that defines the DbtProject.
    prepare = re.search(r"dagster-dbt project prepare-and-package --file (\S+)", runs)
    assert prepare, runs
    project_file = REPO_ROOT / prepare.group(1)
    assert project_file.is_file() and "DbtProject(" in project_file.read_text(), project_file
    user = by_kind("USER")[-1]
    assert user not in {"root", "0"} and not user.startswith("0:")
    # The last USER comes after every RUN: nothing at run time runs as root.
    kinds = [k for k, _ in instructions]
    assert len(kinds) - 1 - kinds[::-1].index("USER") > max(i for i, k in enumerate(kinds) if k == "RUN")
    # tini is PID 1: it reaps zombies and forwards signals to the JVM or Python process.
    assert "tini" in runs
    assert json.loads(by_kind("ENTRYPOINT")[-1])[:2] == ["/usr/bin/tini", "--"]
    cmd = json.loads(by_kind("CMD")[-1])
    assert cmd[:3] == ["dagster", "code-server", "start"]
    assert cmd[cmd.index("-m") + 1] == "stock_platform.definitions"
    assert int(cmd[cmd.index("-p") + 1]) == user_deployment()["port"]
    # The build context: none of these may reach the image.
    ignored = set((REPO_ROOT / ".dockerignore").read_text().split())
    assert {".data", ".venv", "test-artifacts", "dbt_project/target", "dbt_project/logs",
            "**/__pycache__", ".pytest_cache"} <= ignored


def test_image_entrypoint_runs_commands_and_starts_spark_executors(tmp_path):
    entrypoint = DEPLOY / "spark-entrypoint.sh"
    venv_bin = str(Path(sys.executable).parent)
    env = {"PATH": f"{venv_bin}:/usr/bin:/bin"}
    passthrough = subprocess.run(["bash", str(entrypoint), "echo", "code server"], env=env,
                                 capture_output=True, text=True, check=True)
    assert passthrough.stdout == "code server\n"

    # A stand-in `java` that prints its command line: what an executor pod would run.
    java_home = tmp_path / "java"
    (java_home / "bin").mkdir(parents=True)
    (java_home / "bin" / "java").write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    (java_home / "bin" / "java").chmod(0o755)
    spark_env = {
        **env, "JAVA_HOME": str(java_home), "SPARK_EXECUTOR_MEMORY": "4g",
        "SPARK_DRIVER_URL": "spark://CoarseGrainedScheduler@10.8.0.12:7078",
        "SPARK_EXECUTOR_ID": "3", "SPARK_EXECUTOR_CORES": "2", "SPARK_APPLICATION_ID": "spark-app",
        "SPARK_EXECUTOR_POD_IP": "10.8.1.7", "SPARK_RESOURCE_PROFILE_ID": "0",
        "SPARK_EXECUTOR_POD_NAME": "exec-3", "SPARK_JAVA_OPT_1": "-Dspark.driver.port=7078",
        "SPARK_JAVA_OPT_0": "-Dspark.app.id=spark-app",
        # The executor configuration Spark mounts, and extra jars: on the classpath as in Spark's image.
        "SPARK_CONF_DIR": "/opt/spark/conf", "SPARK_EXTRA_CLASSPATH": "/opt/extra/*",
    }
    result = subprocess.run(["bash", str(entrypoint), "executor"], env=spark_env,
                            capture_output=True, text=True, check=True)
    args = result.stdout.splitlines()
    assert args[:4] == ["-Dspark.app.id=spark-app", "-Dspark.driver.port=7078", "-Xms4g", "-Xmx4g"]
    classpath = args[5].split(":")
    assert classpath[0] == "/opt/spark/conf" and classpath[1].endswith("pyspark/jars/*")
    assert classpath[2:] == ["/opt/extra/*"]
    assert shlex.join(args[6:]) == shlex.join([
        "org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend",
        "--driver-url", "spark://CoarseGrainedScheduler@10.8.0.12:7078", "--executor-id", "3",
        "--cores", "2", "--app-id", "spark-app", "--hostname", "10.8.1.7",
        "--resourceProfileId", "0", "--podName", "exec-3",
    ])
