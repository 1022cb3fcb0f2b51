"""A thin typed layer over the `kubernetes` client: server-side apply, get and events for any kind.

The generated API classes need one class per group; the operator touches eight kinds, so it talks to
the REST paths directly. Paths of the kinds it manages are fixed; others are found through discovery.
"""

from __future__ import annotations

import os
from typing import Any

from kubernetes import client, config
from kubernetes.client.rest import ApiException

FIELD_MANAGER = "userpipeline-operator"
Obj = dict[str, Any]

# (apiVersion, kind) -> (plural, namespaced)
KNOWN_KINDS: dict[tuple[str, str], tuple[str, bool]] = {
    ("v1", "ConfigMap"): ("configmaps", True),
    ("v1", "Secret"): ("secrets", True),
    ("v1", "ServiceAccount"): ("serviceaccounts", True),
    ("v1", "PersistentVolumeClaim"): ("persistentvolumeclaims", True),
    ("v1", "Event"): ("events", True),
    ("apps/v1", "Deployment"): ("deployments", True),
    ("batch/v1", "CronJob"): ("cronjobs", True),
    ("rbac.authorization.k8s.io/v1", "Role"): ("roles", True),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): ("rolebindings", True),
    ("kafka.strimzi.io/v1", "KafkaTopic"): ("kafkatopics", True),
    ("sparkoperator.k8s.io/v1beta2", "SparkApplication"): ("sparkapplications", True),
    ("userpipeline.io/v1alpha1", "UserPipeline"): ("userpipelines", True),
}

__all__ = ["ApiException", "Kube", "FIELD_MANAGER", "load_api_client"]


def load_api_client(kubeconfig: str | None = None) -> client.ApiClient:
    """In-cluster credentials when running in a Pod, else the kubeconfig (`$KUBECONFIG` or ~/.kube/config)."""
    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config()
        return client.ApiClient()
    return config.new_client_from_config(config_file=kubeconfig or os.environ.get("KUBECONFIG"))


class Kube:
    def __init__(self, api: client.ApiClient):
        self.api = api
        self._kinds = dict(KNOWN_KINDS)

    # -- generic REST ---------------------------------------------------------------------------
    def request(self, method: str, path: str, *, query: list[tuple[str, str]] | None = None,
                body: Any = None, content_type: str = "application/json") -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        method, url, headers, body, post = self.api.param_serialize(
            method, path, query_params=query or [], header_params=headers, body=body, auth_settings=["BearerToken"])
        response = self.api.call_api(method, url, headers, body, post, _request_timeout=30)
        response.read()
        return self.api.response_deserialize(response, {"2XX": "object"}).data

    def path(self, api_version: str, kind: str, namespace: str | None, name: str | None = None) -> str:
        plural, namespaced = self._resource(api_version, kind)
        base = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"
        if namespaced and namespace:
            base = f"{base}/namespaces/{namespace}"
        return f"{base}/{plural}" + (f"/{name}" if name else "")

    def _resource(self, api_version: str, kind: str) -> tuple[str, bool]:
        if (api_version, kind) not in self._kinds:
            base = f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"
            for res in self.request("GET", base)["resources"]:
                if "/" not in res["name"]:
                    self._kinds[(api_version, res["kind"])] = (res["name"], res["namespaced"])
        return self._kinds[(api_version, kind)]

    def _path_of(self, obj: Obj) -> str:
        meta = obj["metadata"]
        return self.path(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])

    # -- verbs ------------------------------------------------------------------------------------
    def apply(self, obj: Obj, manager: str = FIELD_MANAGER, *, strict: bool = True) -> Obj:
        """Server-side apply (create or update the fields this manager owns); returns the stored object."""
        query = [("fieldManager", manager), ("force", "true"), ("fieldValidation", "Strict" if strict else "Ignore")]
        return self.request("PATCH", self._path_of(obj), query=query, body=obj,
                            content_type="application/apply-patch+yaml")

    def create(self, obj: Obj) -> Obj:
        path = self._path_of(obj).rsplit("/", 1)[0]
        return self.request("POST", path, query=[("fieldValidation", "Strict")], body=obj)

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        try:
            return self.request("GET", self.path(api_version, kind, namespace, name))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, api_version: str, kind: str, namespace: str | None = None, **query: str) -> list[Obj]:
        return self.request("GET", self.path(api_version, kind, namespace), query=list(query.items()))["items"]

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> None:
        try:
            self.request("DELETE", self.path(api_version, kind, namespace, name))
        except ApiException as exc:
            if exc.status != 404:
                raise

    def patch_merge(self, api_version: str, kind: str, name: str, namespace: str | None, patch: Obj,
                    subresource: str = "") -> Obj:
        path = self.path(api_version, kind, namespace, name) + (f"/{subresource}" if subresource else "")
        return self.request("PATCH", path, body=patch, content_type="application/merge-patch+json")
