"""The dashboard from `spec.dashboard`: Deployment, Service `<pipeline>-dashboard` (port 8050), Ingress, and,
when enabled in the operator's settings and served by the API server, a Gateway API HTTPRoute.
Disabled: the children are removed."""

from __future__ import annotations

from userpipeline.operator.kube.client import ApiException, Obj
from userpipeline.operator.kube.parts import Context, Outcome, api_error, apply_children, child_key, failed
from userpipeline.operator.kube.pods import container_security, pod_security, resources, store_env
from userpipeline.operator.kube.readback import deployment_problem
from userpipeline.operator.kube.settings import CONFIG_DIR, CONFIG_PATH
from userpipeline.operator.kube.wiring import MONGO

CONDITION = "Dashboard"
PORT = 8050
GATEWAY_API = "gateway.networking.k8s.io/v1"
KINDS = [("apps/v1", "Deployment"), ("v1", "Service"), ("networking.k8s.io/v1", "Ingress"), (GATEWAY_API, "HTTPRoute")]


def _selector(ctx: Context) -> dict[str, str]:
    return {"app.kubernetes.io/instance": ctx.name, "app.kubernetes.io/component": "dashboard"}


def deployment(ctx: Context) -> Obj:
    settings = ctx.settings
    probe = {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 10, "timeoutSeconds": 3}
    container = {
        "name": "dashboard",
        "image": settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": settings.dashboard_command,
        "env": [*store_env(ctx, MONGO), {"name": "USERPIPELINE_SPEC_FILE", "value": CONFIG_PATH}],
        "ports": [{"name": "http", "containerPort": PORT}],
        "readinessProbe": probe,
        "livenessProbe": {**probe, "httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 20,
                          "failureThreshold": 3},
        "volumeMounts": [{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
                         {"name": "tmp", "mountPath": "/tmp"}],
        "securityContext": container_security(),
        "resources": resources("100m", "384Mi"),
    }
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": ctx.metadata(ctx.child_name("dashboard"), "dashboard"),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": _selector(ctx)},
            "template": {
                "metadata": {"labels": ctx.labels("dashboard")},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": pod_security(),
                    "containers": [container],
                    "volumes": [{"name": "config", "configMap": {"name": ctx.child_name("config")}},
                                {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
                },
            },
        },
    }


def service(ctx: Context) -> Obj:
    return {"apiVersion": "v1", "kind": "Service", "metadata": ctx.metadata(ctx.child_name("dashboard"), "dashboard"),
            "spec": {"selector": _selector(ctx),
                     "ports": [{"name": "http", "port": PORT, "targetPort": "http", "protocol": "TCP"}]}}


def _backend(ctx: Context) -> Obj:
    return {"service": {"name": ctx.child_name("dashboard"), "port": {"number": PORT}}}


def ingress(ctx: Context) -> Obj:
    rule: Obj = {"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": _backend(ctx)}]}}
    if ctx.spec.dashboard.host:
        rule["host"] = ctx.spec.dashboard.host
    spec: Obj = {"rules": [rule]}
    if ctx.settings.ingress_class_name:
        spec["ingressClassName"] = ctx.settings.ingress_class_name
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": ctx.metadata(ctx.child_name("dashboard"), "dashboard"), "spec": spec}


def http_route(ctx: Context) -> Obj:
    spec: Obj = {"parentRefs": ctx.settings.http_route_parent_refs,
                 "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                            "backendRefs": [{"name": ctx.child_name("dashboard"), "port": PORT}]}]}
    if ctx.spec.dashboard.host:
        spec["hostnames"] = [ctx.spec.dashboard.host]
    return {"apiVersion": GATEWAY_API, "kind": "HTTPRoute",
            "metadata": ctx.metadata(ctx.child_name("dashboard"), "dashboard"), "spec": spec}


def gateway_api_served(ctx: Context) -> bool:
    try:
        resources_ = ctx.kube.request("GET", f"/apis/{GATEWAY_API}")["resources"]
    except ApiException:
        return False
    return any(r["name"] == "httproutes" for r in resources_)


def remove(ctx: Context, kinds: list[tuple[str, str]]) -> list[str]:
    removed = []
    for api_version, kind in kinds:
        if kind == "HTTPRoute" and not gateway_api_served(ctx):
            continue
        name = ctx.child_name("dashboard")
        if ctx.kube.get(api_version, kind, name, ctx.namespace) is not None:
            ctx.kube.delete(api_version, kind, name, ctx.namespace)
            removed.append(f"{kind}/{name}")
    return removed


def reconcile(ctx: Context) -> Outcome:
    dashboard = ctx.spec.dashboard
    try:
        if not dashboard.enabled:
            removed = remove(ctx, KINDS)
            return Outcome(CONDITION, True, "Disabled", "spec.dashboard.enabled is false",
                           {"dashboardHost": None}, [f"removed {', '.join(removed)}"] if removed else [])
        route = ctx.settings.http_route_enabled and gateway_api_served(ctx)
        made = deployment(ctx)
        objects = [made, service(ctx), ingress(ctx), *([http_route(ctx)] if route else [])]
        removed = [] if route else remove(ctx, KINDS[3:])
    except ApiException as exc:
        return failed(CONDITION, "ApplyFailed", api_error(exc))
    where = dashboard.host or "any host"
    outcome = apply_children(ctx, CONDITION, objects, f"Service {ctx.child_name('dashboard')}:{PORT}, Ingress on {where}"
                             + (", HTTPRoute" if route else ""), {"dashboardHost": dashboard.host})
    outcome.changes += [f"removed {r}" for r in removed]
    problem = deployment_problem(outcome.stored[child_key(made)]) if outcome.ok else None
    return outcome.not_working("NotAvailable", problem) if problem else outcome
