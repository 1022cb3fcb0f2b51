"""The producer: its configuration ConfigMap and its Deployment.

The producer reads a UserPipeline YAML file and notices edits within a second (as it does locally).
A ConfigMap mounted as a volume reaches a running Pod only after the kubelet's sync (up to about a
minute plus its cache TTL), too slow for "a rate change within 5 seconds". So a small native sidecar
(`userpipeline.operator.kube.configsync`) watches this one ConfigMap through the API and rewrites the
file in a shared emptyDir as soon as it changes: the producer is not restarted and needs no API access.
The sidecar's ServiceAccount may only get/watch that ConfigMap (Role with resourceNames).
"""

from __future__ import annotations

import yaml

from userpipeline.operator.kube.client import Obj
from userpipeline.operator.kube.parts import Context, Outcome, apply_children, child_key
from userpipeline.operator.kube.readback import deployment_problem
from userpipeline.operator.kube.pods import container_security, kafka_env, pod_security, resources
from userpipeline.operator.kube.settings import CONFIG_DIR, CONFIG_KEY, CONFIG_PATH, PRODUCER_METRICS_PORT
from userpipeline.operator.spec import API_VERSION, KIND

CONDITION = "Producer"


def render_pipeline(ctx: Context) -> str:
    """The whole UserPipeline document, defaults filled in: what `load_userpipeline` reads."""
    doc = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": ctx.name, "namespace": ctx.namespace},
           "spec": ctx.spec.model_dump(by_alias=True, mode="json")}
    return yaml.safe_dump(doc, sort_keys=False)


def config_map(ctx: Context) -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": ctx.metadata(ctx.child_name("config"), "config"),
            "data": {CONFIG_KEY: render_pipeline(ctx)}}


def sync_rbac(ctx: Context) -> list[Obj]:
    name = ctx.child_name("producer")
    rbac = "rbac.authorization.k8s.io/v1"
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": ctx.metadata(name, "producer")},
        {"apiVersion": rbac, "kind": "Role", "metadata": ctx.metadata(name, "producer"),
         "rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [ctx.child_name("config")],
                    "verbs": ["get", "list", "watch"]}]},
        {"apiVersion": rbac, "kind": "RoleBinding", "metadata": ctx.metadata(name, "producer"),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
         "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ctx.namespace}]},
    ]


def deployment(ctx: Context) -> Obj:
    settings = ctx.settings
    selector = {"app.kubernetes.io/instance": ctx.name, "app.kubernetes.io/component": "producer"}
    mount = {"name": "config", "mountPath": CONFIG_DIR}
    sidecar = {
        "name": "config-sync",
        "image": settings.sidecar_image,
        "imagePullPolicy": settings.image_pull_policy,
        "restartPolicy": "Always",  # a native sidecar: started, and its file written, before the producer
        "command": ["python", "-m", "userpipeline.operator.kube.configsync"],
        "args": ["--configmap", ctx.child_name("config"), "--key", CONFIG_KEY, "--out", CONFIG_PATH],
        "env": [{"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}],
        "startupProbe": {"exec": {"command": ["cat", CONFIG_PATH]}, "periodSeconds": 1, "failureThreshold": 60},
        "readinessProbe": {"exec": {"command": ["cat", CONFIG_PATH]}, "periodSeconds": 10},
        "livenessProbe": {"exec": {"command": ["cat", CONFIG_PATH]}, "periodSeconds": 30, "failureThreshold": 3},
        "volumeMounts": [mount],
        "securityContext": container_security(),
        "resources": resources("10m", "96Mi"),
    }
    producer = {
        "name": "producer",
        "image": settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": settings.producer_command,
        "env": kafka_env(ctx) + [{"name": "USERPIPELINE_CONFIG", "value": CONFIG_PATH}],
        "ports": [{"name": "metrics", "containerPort": PRODUCER_METRICS_PORT}],
        # The metrics endpoint answers while the process runs (it starts before the first record).
        "readinessProbe": {"httpGet": {"path": "/metrics", "port": "metrics"}, "periodSeconds": 10,
                           "timeoutSeconds": 3},
        "livenessProbe": {"httpGet": {"path": "/metrics", "port": "metrics"}, "periodSeconds": 20,
                          "timeoutSeconds": 3, "failureThreshold": 3},
        "volumeMounts": [{**mount, "readOnly": True}, {"name": "tmp", "mountPath": "/tmp"}],
        "securityContext": container_security(),
        "resources": resources("100m", "256Mi"),
    }
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": ctx.metadata(ctx.child_name("producer"), "producer"),
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},  # one producer at a time: the rate is a global budget
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": ctx.labels("producer")},
                "spec": {
                    "serviceAccountName": ctx.child_name("producer"),
                    "securityContext": pod_security(),
                    "initContainers": [sidecar],
                    "containers": [producer],
                    "volumes": [{"name": "config", "emptyDir": {"sizeLimit": "1Mi"}},
                                {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
                },
            },
        },
    }


def reconcile(ctx: Context) -> Outcome:
    producer = ctx.spec.producer
    state = "paused" if producer.paused else "running"
    summary = f"rate {producer.rate_per_second:g} records/s, {state}"
    made = deployment(ctx)
    outcome = apply_children(ctx, CONDITION, [config_map(ctx), *sync_rbac(ctx), made], summary,
                             {"ratePerSecond": producer.rate_per_second, "paused": producer.paused})
    problem = deployment_problem(outcome.stored[child_key(made)]) if outcome.ok else None
    return outcome.not_working("NotAvailable", problem) if problem else outcome
