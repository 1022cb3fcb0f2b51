#!/bin/bash
# /opt/entrypoint.sh of the local Spark base (tools/bootstrap_images.py): the contract of apache/spark's
# entrypoint that Spark on Kubernetes relies on. `driver ARGS` runs spark-submit in client mode inside the
# driver pod, `executor` starts the executor backend from the SPARK_* variables the driver sets on its
# executor pods; anything else runs as given. tini reaps the JVM's children and forwards signals.
set -euo pipefail

export SPARK_HOME="${SPARK_HOME:-/opt/spark}"
SPARK_CLASSPATH="${SPARK_CLASSPATH:+$SPARK_CLASSPATH:}${SPARK_HOME}/jars/*"
if [[ -n "${PYSPARK_PYTHON:-}" ]]; then export PYSPARK_PYTHON; fi
if [[ -n "${PYSPARK_DRIVER_PYTHON:-}" ]]; then export PYSPARK_DRIVER_PYTHON; fi

case "${1:-}" in
  driver)
    shift 1
    cmd=("$SPARK_HOME/bin/spark-submit"
         --conf "spark.driver.bindAddress=${SPARK_DRIVER_BIND_ADDRESS:-0.0.0.0}"
         --conf "spark.executorEnv.SPARK_DRIVER_POD_IP=${SPARK_DRIVER_BIND_ADDRESS:-0.0.0.0}"
         --deploy-mode client "$@")
    ;;
  executor)
    shift 1
    mapfile -t java_opts < <(env | grep '^SPARK_JAVA_OPT_' | sort -t_ -k4 -n | sed 's/[^=]*=\(.*\)/\1/g')
    cmd=("${JAVA_HOME:-/usr/lib/jvm/java-17-openjdk-amd64}/bin/java" "${java_opts[@]}"
         "-Xms${SPARK_EXECUTOR_MEMORY}" "-Xmx${SPARK_EXECUTOR_MEMORY}"
         -cp "${SPARK_CLASSPATH}${SPARK_DIST_CLASSPATH:+:$SPARK_DIST_CLASSPATH}"
         org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend
         --driver-url "$SPARK_DRIVER_URL" --executor-id "$SPARK_EXECUTOR_ID" --cores "$SPARK_EXECUTOR_CORES"
         --app-id "$SPARK_APPLICATION_ID" --hostname "$SPARK_EXECUTOR_POD_IP"
         --resourceProfileId "${SPARK_RESOURCE_PROFILE_ID:-0}" --podName "${SPARK_EXECUTOR_POD_NAME:-}")
    ;;
  *)
    cmd=("$@")
    ;;
esac
exec /usr/bin/tini -s -- "${cmd[@]}"
