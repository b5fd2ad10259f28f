#!/bin/bash
# Entrypoint of the stock_platform image, run under tini (the Dockerfile's ENTRYPOINT), which
# reaps zombies and forwards signals to the JVM or Python process. Spark on Kubernetes starts
# executor pods from this image with the single argument `executor` and the SPARK_* variables
# below; every other command (code server, webserver, daemon, run and step pods) runs as given.
# The executor command and its classpath follow Spark's own image (kubernetes/dockerfiles/spark/
# entrypoint.sh): the configuration directory Spark mounts for executors (SPARK_CONF_DIR) and
# HADOOP_CONF_DIR first, then Spark's jars, SPARK_EXTRA_CLASSPATH and SPARK_DIST_CLASSPATH.
set -euo pipefail

if [ "${1:-}" != "executor" ]; then
    exec "$@"
fi

spark_home="${SPARK_HOME:-$(python -c 'import pyspark; print(pyspark.__path__[0])')}"
classpath="${spark_home}/jars/*"
if [ -n "${SPARK_EXTRA_CLASSPATH:-}" ]; then
    classpath="${classpath}:${SPARK_EXTRA_CLASSPATH}"
fi
if [ -n "${HADOOP_CONF_DIR:-}" ]; then
    classpath="${HADOOP_CONF_DIR}:${classpath}"
fi
classpath="${SPARK_CONF_DIR:-${spark_home}/conf}:${classpath}"
if [ -n "${SPARK_DIST_CLASSPATH:-}" ]; then
    classpath="${classpath}:${SPARK_DIST_CLASSPATH}"
fi

# Spark passes executor JVM options as SPARK_JAVA_OPT_0, SPARK_JAVA_OPT_1, ...
mapfile -t java_opts < <(env | grep '^SPARK_JAVA_OPT_' | sort -t_ -k4 -n | sed 's/^[^=]*=//')
exec "${JAVA_HOME}/bin/java" "${java_opts[@]}" \
    -Xms"${SPARK_EXECUTOR_MEMORY}" -Xmx"${SPARK_EXECUTOR_MEMORY}" \
    -cp "${classpath}" \
    org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend \
    --driver-url "${SPARK_DRIVER_URL}" \
    --executor-id "${SPARK_EXECUTOR_ID}" \
    --cores "${SPARK_EXECUTOR_CORES}" \
    --app-id "${SPARK_APPLICATION_ID}" \
    --hostname "${SPARK_EXECUTOR_POD_IP}" \
    --resourceProfileId "${SPARK_RESOURCE_PROFILE_ID}" \
    --podName "${SPARK_EXECUTOR_POD_NAME}"
