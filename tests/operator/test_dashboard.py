"""The dashboard part: Deployment, Service, Ingress (class only when set), HTTPRoute only where the Gateway
API is served; disabled -> removed."""

from __future__ import annotations

import uuid

import yaml

from kube.pipelines import child, get_pipeline, patch_spec, pipeline, wait_ready
from kube.resources import condition, install_crds, wait_for
from userpipeline.operator.kube import dashboard
from userpipeline.operator.kube.client import Kube
from userpipeline.operator.kube.parts import Context
from userpipeline.operator.kube.settings import OperatorSettings
from userpipeline.operator.spec import UserPipelineSpec

# The Gateway API CRDs are not vendored here: a minimal stand-in of HTTPRoute (same group, version, kind)
# makes the API server serve gateway.networking.k8s.io/v1, which is all the operator looks for.
HTTPROUTE_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "httproutes.gateway.networking.k8s.io",
                 # *.k8s.io groups need it; the real Gateway API CRDs carry this one.
                 "annotations": {"api-approved.kubernetes.io": "https://github.com/kubernetes-sigs/gateway-api/pull/2466"}},
    "spec": {"group": "gateway.networking.k8s.io", "scope": "Namespaced",
             "names": {"kind": "HTTPRoute", "plural": "httproutes", "singular": "httproute", "listKind": "HTTPRouteList"},
             "versions": [{"name": "v1", "served": True, "storage": True,
                           "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]},
}


def test_dashboard_children_follow_the_spec_and_go_when_disabled(admin: Kube, operator, stores) -> None:
    ns = stores.namespace
    admin.create(pipeline("dash", ns, {"dashboard": {"host": "users.example.org"}}))
    wait_ready(admin, "dash", ns)
    ingress = child(admin, ns, "dash", "dashboard", "Ingress")["spec"]
    assert "ingressClassName" not in ingress  # unset in the operator's settings: the cluster's default class
    assert ingress["rules"] == [{"host": "users.example.org", "http": {"paths": [{
        "path": "/", "pathType": "Prefix", "backend": {"service": {"name": "dash-dashboard", "port": {"number": 8050}}}}]}}]
    service = child(admin, ns, "dash", "dashboard", "Service")["spec"]
    assert service["ports"][0]["port"] == 8050
    pod = child(admin, ns, "dash", "dashboard", "Deployment")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert (container["readinessProbe"]["httpGet"]["path"], container["livenessProbe"]["httpGet"]["path"]) == \
        ("/readyz", "/healthz")
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"] and container["resources"]["limits"]

    patch_spec(admin, ns, "dash", {"dashboard": {"enabled": False, "host": ""}})
    gone = wait_for(lambda: (obj := get_pipeline(admin, "dash", ns)) and
                    condition(obj, "Dashboard").get("reason") == "Disabled" and obj, 30, what="Dashboard Disabled")
    for api_version, kind in dashboard.KINDS[:3]:
        assert admin.get(api_version, kind, "dash-dashboard", ns) is None, kind
    assert condition(gone, "Ready")["status"] == "True"


def context(admin: Kube, ns: str, name: str, settings: OperatorSettings, spec: dict | None = None) -> Context:
    """The part on its own, with other operator settings; no UserPipeline, so the running operator stays out."""
    return Context(name, ns, str(uuid.uuid4()), UserPipelineSpec.model_validate(spec or {}), settings, admin)


def test_ingress_class_and_httproute_only_where_the_gateway_api_is_served(admin: Kube, namespace: str,
                                                                          tmp_path) -> None:
    settings = OperatorSettings(ingress_class_name="cloud-provider-kind", http_route_enabled=True,
                                http_route_parent_refs=[{"name": "gateway", "namespace": "default"}])
    ctx = context(admin, namespace, "routed", settings, {"dashboard": {"host": "users.example.org"}})
    first = dashboard.reconcile(ctx)
    assert first.reason == "NotAvailable"  # applied; no kubelet runs the pod here
    ingress = child(admin, namespace, "routed", "dashboard", "Ingress")["spec"]
    assert ingress["ingressClassName"] == "cloud-provider-kind"
    assert not dashboard.gateway_api_served(ctx)  # no HTTPRoute without the API, and no error either

    crd = tmp_path / "httproute.yaml"
    crd.write_text(yaml.safe_dump(HTTPROUTE_CRD))
    install_crds(admin, [crd])
    dashboard.reconcile(ctx)
    route = admin.get("gateway.networking.k8s.io/v1", "HTTPRoute", "routed-dashboard", namespace)
    assert route["spec"]["parentRefs"] == [{"name": "gateway", "namespace": "default"}]
    assert route["spec"]["hostnames"] == ["users.example.org"]
    assert route["spec"]["rules"][0]["backendRefs"] == [{"name": "routed-dashboard", "port": 8050}]

    off = Context(ctx.name, ctx.namespace, ctx.uid, ctx.spec, OperatorSettings(), admin)
    dashboard.reconcile(off)
    assert admin.get("gateway.networking.k8s.io/v1", "HTTPRoute", "routed-dashboard", namespace) is None
    assert "ingressClassName" not in child(admin, namespace, "routed", "dashboard", "Ingress")["spec"]
