"""The node's ingress controller: Traefik (built from its Go module by the bootstrap, tools/go/traefik) as a
one-replica Deployment with the Kubernetes Ingress provider, so Ingresses work as on kind or minikube.

`manifests(image)` gives the ServiceAccount, the least ClusterRole the Ingress provider needs and its binding,
the IngressClass `traefik` (the cluster's default class: an Ingress without a class gets it at admission), the
Deployment and the ClusterIP Service `traefik` (port 8000, named `web`) in `namespace` (kube-system unless told).
An Ingress is served once its `status.loadBalancer.ingress` names the Service's host (`STATUS_HOSTNAME`): Traefik
writes it when it has taken the Ingress in. `args(...)` are the container's arguments, also used by
tests/ingress to run the same binary on the host against a control plane without a node.

No dashboard, API, metrics or telemetry; no TLS entrypoint (nothing here has certificates). Traefik listens on
8000 and answers its readiness probe on /ping at 8082 (a separate entrypoint: the web entrypoint only serves
Ingress routes, so an unknown host gets 404 for every path). The pod meets the restricted Pod Security standard.
"""

from __future__ import annotations

import yaml

NAME = "traefik"
INGRESS_CLASS = "traefik"
CONTROLLER = "traefik.io/ingress-controller"  # Traefik takes the IngressClasses naming this controller
WEB_PORT = 8000
PING_PORT = 8082
UID = 65532


def status_hostname(namespace: str = "kube-system") -> str:
    return f"{NAME}.{namespace}.svc.cluster.local"


def args(web: str = f":{WEB_PORT}", ping: str = f":{PING_PORT}", status_host: str | None = None,
         log_level: str = "INFO") -> list[str]:
    """Traefik's command line: the Kubernetes Ingress provider for the class `traefik` only."""
    return [
        f"--entryPoints.web.address={web}",
        f"--entryPoints.ping.address={ping}",
        "--ping=true", "--ping.entryPoint=ping",
        "--providers.kubernetesingress=true",
        f"--providers.kubernetesingress.ingressClass={INGRESS_CLASS}",
        *([f"--providers.kubernetesingress.ingressEndpoint.hostname={status_host}"] if status_host else []),
        "--global.checkNewVersion=false", "--global.sendAnonymousUsage=false",
        f"--log.level={log_level}", "--log.noColor=true", "--accesslog=false",
    ]


def cluster_role() -> dict:
    """What the Ingress provider reads (its informers list and watch; nodes: its cluster-scope informer, kept on
    because IngressClasses come with it) and the one thing it writes, the Ingresses' status."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": NAME},
        "rules": [
            {"apiGroups": [""], "resources": ["services", "secrets", "nodes"], "verbs": ["list", "watch"]},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
            {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses", "ingressclasses"],
             "verbs": ["list", "watch"]},
            {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses/status"], "verbs": ["update"]},
        ],
    }


def manifests(image: str, namespace: str = "kube-system") -> str:
    labels = {"app.kubernetes.io/name": NAME}
    container = {
        "name": NAME, "image": image, "imagePullPolicy": "Never",
        "args": args(status_host=status_hostname(namespace)),
        "ports": [{"name": "web", "containerPort": WEB_PORT}, {"name": "ping", "containerPort": PING_PORT}],
        "readinessProbe": {"httpGet": {"path": "/ping", "port": "ping"}, "periodSeconds": 1},
        "livenessProbe": {"httpGet": {"path": "/ping", "port": "ping"}, "periodSeconds": 10},
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
    }
    pod_spec = {
        "serviceAccountName": NAME, "automountServiceAccountToken": True,
        "securityContext": {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "terminationGracePeriodSeconds": 5, "containers": [container],
    }
    docs = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": NAME, "namespace": namespace}},
        cluster_role(),
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": NAME},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": NAME},
         "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": namespace}]},
        {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
         "metadata": {"name": INGRESS_CLASS, "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
         "spec": {"controller": CONTROLLER}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": NAME, "namespace": namespace},
         "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels}, "spec": pod_spec}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": NAME, "namespace": namespace, "labels": labels},
         "spec": {"type": "ClusterIP", "selector": labels,
                  "ports": [{"name": "web", "port": WEB_PORT, "targetPort": "web", "protocol": "TCP"}]}},
    ]
    return yaml.safe_dump_all(docs)
