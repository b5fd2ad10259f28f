"""Kubernetes policy in one place: the pod each step gets, and Spark with executors as pods.

Per-step resources are `dagster-k8s/config` *op* tags on the assets themselves, so they hold for
every way a run starts (schedule, UI materialize, backfill, automation). Job-level tags would be
ignored for runs the UI launches from an asset selection, and k8s_job_executor never applies
job-level tags to step pods anyway.
"""

from __future__ import annotations

import json
from typing import Any

from stock_platform.settings import Settings, SettingsError, require_value
from stock_platform.spark import SESSION_CONFIG

K8S_CONFIG_TAG = "dagster-k8s/config"


def _pod_size(cpu: str, cpu_limit: str, memory: str) -> dict[str, dict[str, str]]:
    """Memory limit = request: a step that outgrows it is OOM-killed at a known size instead of
    being evicted when the node runs short. The CPU limit allows bursting above the request."""
    return {
        "requests": {"cpu": cpu, "memory": memory},
        "limits": {"cpu": cpu_limit, "memory": memory},
    }


STEP_RESOURCES: dict[str, dict[str, dict[str, str]]] = {
    # HTTP paging with bounded concurrency: I/O bound.
    "raw_stock_prices": _pod_size("500m", "1", "1Gi"),
    # The Spark driver (local[*] runs the whole job here; on Kubernetes only the driver).
    # local_spark_config gives the driver JVM 6g; the rest is Python, Arrow and overhead.
    "clean_stock_prices": _pod_size("2", "4", "8Gi"),
    # BigQuery load jobs: the pod only submits and waits.
    "daily_prices": _pod_size("250m", "1", "512Mi"),
    # dbt compiles and submits SQL; BigQuery does the work.
    "stock_analytics_dbt": _pod_size("500m", "1", "1Gi"),
}

SPARK_STEP = "clean_stock_prices"

# The Spark driver tells executors where to connect (its pod IP) and owns them (its pod name),
# so executor pods are garbage-collected with it. The downward API supplies both.
SPARK_DRIVER_ENV = [
    {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
]


def k8s_op_tags(step: str) -> dict[str, str]:
    """The op tags of `step` (an asset or multi-asset name): its container resources."""
    container: dict[str, Any] = {"resources": STEP_RESOURCES[step]}
    if step == SPARK_STEP:
        container["env"] = SPARK_DRIVER_ENV
    return {K8S_CONFIG_TAG: json.dumps({"container_config": container})}


def _positive_int(settings: Settings, name: str, default: str) -> str:
    raw = settings.environ.get(name, "").strip() or default
    if not raw.isdigit() or int(raw) < 1:
        raise SettingsError(f"{name}={raw!r} must be a whole number of at least 1")
    return raw


def kubernetes_spark_config(settings: Settings) -> dict[str, str]:
    """Spark config for SPARK_RUNNER=kubernetes: the driver runs in the step's own pod (client
    mode), executors are pods in the same namespace, using the same image and Kubernetes service
    account, so they reach GCS through Workload Identity like the driver."""
    why = "for Spark on Kubernetes (SPARK_RUNNER=kubernetes)"
    env = settings.environ
    image = require_value("SPARK_K8S_IMAGE", env.get("SPARK_K8S_IMAGE"), why)
    # Set on the cleaning step's pod by k8s_op_tags (downward API).
    pod_ip = require_value("POD_IP", env.get("POD_IP"), why + "; set by the step's op tags")
    pod_name = require_value("POD_NAME", env.get("POD_NAME"), why + "; set by the step's op tags")
    namespace = require_value(
        "POD_NAMESPACE", env.get("POD_NAMESPACE"), why + "; set by the step's op tags"
    )
    project = require_value("GCP_PROJECT", env.get("GCP_PROJECT"), why)
    service_account = env.get("SPARK_K8S_SERVICE_ACCOUNT", "").strip() or "stock-platform"
    executor_memory = env.get("SPARK_EXECUTOR_MEMORY", "").strip() or "4g"
    return {
        "spark.master": "k8s://https://kubernetes.default.svc",
        "spark.submit.deployMode": "client",
        "spark.app.name": "stock_platform",
        "spark.kubernetes.namespace": namespace,
        "spark.kubernetes.container.image": image,
        "spark.kubernetes.container.image.pullPolicy": "IfNotPresent",
        "spark.kubernetes.authenticate.driver.serviceAccountName": service_account,
        "spark.kubernetes.authenticate.executor.serviceAccountName": service_account,
        "spark.kubernetes.driver.pod.name": pod_name,
        "spark.driver.host": pod_ip,
        "spark.driver.bindAddress": "0.0.0.0",
        # Fixed ports, so a NetworkPolicy can admit executor -> driver traffic.
        "spark.driver.port": "7078",
        "spark.blockManager.port": "7079",
        "spark.executor.instances": _positive_int(settings, "SPARK_EXECUTOR_INSTANCES", "4"),
        "spark.executor.cores": _positive_int(settings, "SPARK_EXECUTOR_CORES", "2"),
        "spark.executor.memory": executor_memory,
        "spark.kubernetes.executor.podNamePrefix": f"{pod_name[:40]}-exec",
        "spark.kubernetes.executor.label.app": "stock-platform-spark",
        # Workload Identity only works on nodes running the GKE metadata server.
        "spark.kubernetes.node.selector.iam.gke.io/gke-metadata-server-enabled": "true",
        "spark.kubernetes.executor.deleteOnTermination": "true",
        "spark.dynamicAllocation.enabled": "false",
        **SESSION_CONFIG,
        # GCS connector (jar baked into the image): credentials from the metadata server.
        "spark.hadoop.fs.gs.impl": "com.google.cloud.hadoop.fs.gcs.GoogleHadoopFileSystem",
        "spark.hadoop.fs.AbstractFileSystem.gs.impl": "com.google.cloud.hadoop.fs.gcs.GoogleHadoopFS",
        "spark.hadoop.fs.gs.project.id": project,
        "spark.hadoop.google.cloud.auth.type": "APPLICATION_DEFAULT",
    }
