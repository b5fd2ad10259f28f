#!/bin/bash
# Entrypoint of the stock_platform image. Spark on Kubernetes starts executor pods from this image
# with the single argument `executor` and the SPARK_* variables below (Spark's own images do the
# same in /opt/entrypoint.sh); every other command (code server, run and step pods) runs as given.
set -euo pipefail

if [ "${1:-}" != "executor" ]; then
    exec "$@"
fi

spark_home="$(python -c 'import pyspark; print(pyspark.__path__[0])')"
# Spark passes executor JVM options as SPARK_JAVA_OPT_0, SPARK_JAVA_OPT_1, ...
mapfile -t java_opts < <(env | grep '^SPARK_JAVA_OPT_' | sort -t_ -k4 -n | sed 's/^[^=]*=//')
exec "${JAVA_HOME}/bin/java" "${java_opts[@]}" \
    -Xms"${SPARK_EXECUTOR_MEMORY}" -Xmx"${SPARK_EXECUTOR_MEMORY}" \
    -cp "${spark_home}/jars/*" \
    org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend \
    --driver-url "${SPARK_DRIVER_URL}" \
    --executor-id "${SPARK_EXECUTOR_ID}" \
    --cores "${SPARK_EXECUTOR_CORES}" \
    --app-id "${SPARK_APPLICATION_ID}" \
    --hostname "${SPARK_EXECUTOR_POD_IP}" \
    --resourceProfileId "${SPARK_RESOURCE_PROFILE_ID}" \
    --podName "${SPARK_EXECUTOR_POD_NAME}"
