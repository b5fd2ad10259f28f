"""Kubernetes policy in one place: how a step asks for its pod, and Spark with executors as pods.

Per-step resources (each domain sizes its own steps) are `dagster-k8s/config` *op* tags on the
assets themselves, so they hold for every way a run starts (schedule, UI materialize, backfill,
automation). Job-level tags would be ignored for runs the UI launches from an asset selection,
and k8s_job_executor never applies job-level tags to step pods anyway.
"""

from __future__ import annotations

import json
from typing import Any

from stock_platform.platform.settings import PlatformSettings, require_value
from stock_platform.platform.spark import SESSION_CONFIG

K8S_CONFIG_TAG = "dagster-k8s/config"
# The GKE node pool of Spark drivers (the cleaning steps) and executors, tainted so that nothing
# else lands there (deploy/README.md, "Node pools").
SPARK_NODE_POOL = "spark"
SPARK_TOLERATION = {"key": "dedicated", "operator": "Equal", "value": "spark", "effect": "NoSchedule"}
# Executor pods: the security context the namespace's Pod Security level requires, and the
# toleration of the Spark pool (Spark's configuration has no setting for either).
EXECUTOR_POD_TEMPLATE = "/app/deploy/spark-executor-pod.yaml"
# On the driver's pod, for the NetworkPolicy admitting its executors (deploy/k8s/networkpolicy.yaml).
SPARK_DRIVER_LABEL = "stock-platform/spark-driver"


# The Spark driver tells executors where to connect (its pod IP) and owns them (its pod name),
# so executor pods are garbage-collected with it. The downward API supplies both.
SPARK_DRIVER_ENV = [
    {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
]


def k8s_op_tags(cpu: str, cpu_limit: str, memory: str, spark_driver: bool = False) -> dict[str, str]:
    """Op tags giving a step's pod its container resources; a Spark driver also learns its pod's
    IP, name and namespace.

    Memory limit = request: a step that outgrows it is OOM-killed at a known size instead of
    being evicted when the node runs short. The CPU limit allows bursting above the request."""
    container: dict[str, Any] = {
        "resources": {
            "requests": {"cpu": cpu, "memory": memory},
            "limits": {"cpu": cpu_limit, "memory": memory},
        }
    }
    config: dict[str, Any] = {"container_config": container}
    if spark_driver:
        container["env"] = SPARK_DRIVER_ENV
        config["pod_spec_config"] = {
            "node_selector": {"cloud.google.com/gke-nodepool": SPARK_NODE_POOL},
            "tolerations": [SPARK_TOLERATION],
        }
        config["pod_template_spec_metadata"] = {"labels": {SPARK_DRIVER_LABEL: "true"}}
    return {K8S_CONFIG_TAG: json.dumps(config)}


def kubernetes_spark_config(settings: PlatformSettings, run_image: str | None = None) -> dict[str, str]:
    """Spark config for SPARK_RUNNER=kubernetes: the driver runs in the step's own pod (client
    mode), executors are pods in the same namespace, using the run's image (else SPARK_K8S_IMAGE)
    and the same Kubernetes service account, so they reach GCS through Workload Identity like
    the driver."""
    why = "for Spark on Kubernetes (SPARK_RUNNER=kubernetes)"
    image = require_value("SPARK_K8S_IMAGE", run_image or settings.spark_k8s_image, why)
    # Set on the Spark step's pod by k8s_op_tags (downward API).
    by_tags = why + "; set by the step's op tags"
    pod_ip = require_value("POD_IP", settings.pod_ip, by_tags)
    pod_name = require_value("POD_NAME", settings.pod_name, by_tags)
    namespace = require_value("POD_NAMESPACE", settings.pod_namespace, by_tags)
    project = require_value("GCP_PROJECT", settings.gcp_project, why)
    service_account = settings.spark_k8s_service_account
    executor_memory = settings.spark_executor_memory
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
        "spark.executor.instances": str(settings.spark_executor_instances),
        "spark.executor.cores": str(settings.spark_executor_cores),
        "spark.executor.memory": executor_memory,
        # Outside the JVM heap: the Python workers (the web cleaning's parser, the
        # stock cleaning's page reader) and Arrow buffers. Spark's default (10%, at least 384m)
        # leaves them a few hundred MiB and the pod is OOM-killed.
        "spark.executor.memoryOverhead": settings.spark_executor_memory_overhead,
        # The driver's JVM starts in this process (client mode) with this heap; its default 1g
        # inside the cleaning step's 8Gi pod would leave most of the pod unused.
        "spark.driver.memory": settings.spark_driver_memory,
        # Spark appends "-exec-<id>".
        "spark.kubernetes.executor.podNamePrefix": pod_name[:40].rstrip("-"),
        "spark.kubernetes.executor.label.app": "stock-platform-spark",
        "spark.kubernetes.executor.podTemplateFile": EXECUTOR_POD_TEMPLATE,
        # Workload Identity only works on nodes running the GKE metadata server.
        "spark.kubernetes.node.selector.iam.gke.io/gke-metadata-server-enabled": "true",
        "spark.kubernetes.node.selector.cloud.google.com/gke-nodepool": SPARK_NODE_POOL,
        "spark.kubernetes.executor.deleteOnTermination": "true",
        "spark.dynamicAllocation.enabled": "false",
        **SESSION_CONFIG,
        # GCS connector (jar baked into the image): credentials from the metadata server.
        "spark.hadoop.fs.gs.impl": "com.google.cloud.hadoop.fs.gcs.GoogleHadoopFileSystem",
        "spark.hadoop.fs.AbstractFileSystem.gs.impl": "com.google.cloud.hadoop.fs.gcs.GoogleHadoopFS",
        "spark.hadoop.fs.gs.project.id": project,
        "spark.hadoop.fs.gs.auth.type": "APPLICATION_DEFAULT",
    }
