"""The Spark Operator's part on the real node, played by the test (its module is not served by the Go module
proxy here, so it cannot be built; docs/real-node.md).

For every SparkApplication in the namespace it runs what the Spark Operator would start: a driver pod from the
application's own spec (image, main file, environment, ConfigMaps, volumes, security contexts, service
account), and reports the driver's state in the application's status as the Spark Operator does
(SUBMITTED, RUNNING, FAILED with the reason). A deleted driver pod is replaced, as `restartPolicy: Always`
asks. One difference, said where it matters: the driver runs Spark in local mode (`local[N]`, N = the
executors' cores) instead of asking the API server for executor pods, which a 2-core machine could not fit
beside the stores.
"""

from __future__ import annotations

import threading
from typing import Any

import structlog
from kubernetes import client
from kubernetes.client.rest import ApiException

log = structlog.get_logger("spark-standin")
GROUP, VERSION, PLURAL = "sparkoperator.k8s.io", "v1beta2", "sparkapplications"
Obj = dict[str, Any]


def driver_pod(app: Obj) -> Obj:
    """The driver pod the Spark Operator would make for `app` (cluster mode), Spark in local mode inside it."""
    spec, name = app["spec"], app["metadata"]["name"]
    driver, executor = spec["driver"], spec.get("executor") or {}
    main = spec["mainApplicationFile"].removeprefix("local://")
    confs = {**(spec.get("sparkConf") or {}), "spark.driver.memory": driver.get("memory", "1g"),
             "spark.app.name": name}
    cores = int(executor.get("cores", 1)) * int(executor.get("instances", 1))
    config_maps = driver.get("configMaps") or []
    volumes = [*(spec.get("volumes") or []),
               *({"name": f"cm-{c['name']}", "configMap": {"name": c["name"]}} for c in config_maps)]
    wanted = {v["name"] for v in spec.get("volumes") or []}
    mounts = [*(m for m in driver.get("volumeMounts") or [] if m["name"] in wanted),
              *({"name": f"cm-{c['name']}", "mountPath": c["path"]} for c in config_maps)]
    container = {
        "name": "spark-kubernetes-driver", "image": spec["image"],
        "imagePullPolicy": spec.get("imagePullPolicy", "IfNotPresent"),
        "args": ["driver", "--master", f"local[{cores}]",
                 *[arg for key, value in confs.items() for arg in ("--conf", f"{key}={value}")], main,
                 *(spec.get("arguments") or [])],
        "env": [*(driver.get("env") or []),
                {"name": "SPARK_DRIVER_BIND_ADDRESS", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
        "volumeMounts": mounts,
        "securityContext": driver.get("securityContext") or {},
        "resources": {"requests": {"cpu": str(driver.get("cores", 1)), "memory": quantity(driver.get("memory", "1g"))}},
    }
    labels = {**(driver.get("labels") or {}), "spark-role": "driver", "sparkoperator.k8s.io/app-name": name}
    owner = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "SparkApplication", "name": name,
             "uid": app["metadata"]["uid"], "controller": True}
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"{name}-driver", "labels": labels, "annotations": driver.get("annotations") or {},
                     "ownerReferences": [owner]},
        "spec": {"restartPolicy": "Never", "serviceAccountName": driver.get("serviceAccount", "default"),
                 "securityContext": driver.get("podSecurityContext") or {}, "terminationGracePeriodSeconds": 10,
                 "containers": [container], "volumes": volumes},
    }


def quantity(spark_memory: str) -> str:
    """Spark's memory notation (1g, 512m) as a Kubernetes quantity (1Gi, 512Mi)."""
    units = {"k": "Ki", "m": "Mi", "g": "Gi", "t": "Ti"}
    unit = spark_memory[-1:].lower()
    return f"{spark_memory[:-1]}{units[unit]}" if unit in units else spark_memory


def application_state(pod: client.V1Pod | None) -> Obj:
    if pod is None:
        return {"state": "SUBMITTED"}
    phase = pod.status.phase
    if phase == "Running":
        return {"state": "RUNNING"}
    if phase in ("Failed", "Succeeded"):
        terminated = [s.state.terminated for s in pod.status.container_statuses or [] if s.state.terminated]
        reason = f"driver container exited with {terminated[0].exit_code} ({terminated[0].reason})" if terminated \
            else f"driver pod {phase}"
        return {"state": "FAILED" if phase == "Failed" else "COMPLETED", "errorMessage": reason}
    return {"state": "SUBMITTED"}


class SparkOperatorStandIn:
    """Reconciles the namespace's SparkApplications every `interval` seconds in a thread (`with` block)."""

    def __init__(self, api: client.ApiClient, namespace: str, interval: float = 1.0):
        self.core, self.custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
        self.namespace, self.interval = namespace, interval
        self.submissions: dict[str, int] = {}  # driver pods created per application
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="spark-standin", daemon=True)

    def __enter__(self) -> SparkOperatorStandIn:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.reconcile()
            except Exception as exc:  # noqa: BLE001 - keep playing; the test sees the outcome
                log.warning("standin_pass_failed", error=str(exc)[:300])

    def reconcile(self) -> None:
        apps = self.custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL)["items"]
        for app in apps:
            if app["metadata"].get("deletionTimestamp"):
                continue
            pod = self._driver(app)
            state = application_state(pod)
            if pod is not None and state["state"] in ("FAILED", "COMPLETED"):
                self.core.delete_namespaced_pod(pod.metadata.name, self.namespace, grace_period_seconds=0)
            status = {"applicationState": state,
                      "driverInfo": {"podName": f"{app['metadata']['name']}-driver"},
                      "submissionAttempts": self.submissions.get(app["metadata"]["name"], 0)}
            if (app.get("status") or {}).get("applicationState") != state:
                self.custom.patch_namespaced_custom_object_status(GROUP, VERSION, self.namespace, PLURAL,
                                                                  app["metadata"]["name"], {"status": status})

    def _driver(self, app: Obj) -> client.V1Pod | None:
        name = f"{app['metadata']['name']}-driver"
        try:
            pod = self.core.read_namespaced_pod(name, self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            pod = None
        if pod is not None and pod.metadata.deletion_timestamp:
            return None  # going: replaced on a later pass
        if pod is None:
            self.core.create_namespaced_pod(self.namespace, driver_pod(app))
            self.submissions[app["metadata"]["name"]] = self.submissions.get(app["metadata"]["name"], 0) + 1
            log.info("driver_submitted", application=app["metadata"]["name"])
        return pod
