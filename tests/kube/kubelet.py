"""Plays the kubelet's part for a control plane that has none: the Pods the controllers create are reported
Running and Ready (no container runs), so that ReplicaSets, Deployments and StatefulSets count them as the
real controllers would."""

from __future__ import annotations

import datetime as dt
import threading

import structlog

from userpipeline.operator.kube.client import ApiException, Kube, Obj

log = structlog.get_logger("kubelet-stand-in")


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def running_status(pod: Obj) -> Obj:
    now = _now()
    ready = [{"type": t, "status": "True", "lastTransitionTime": now}
             for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")]
    statuses = [{"name": c["name"], "image": c["image"], "imageID": "", "ready": True, "started": True,
                 "restartCount": 0, "state": {"running": {"startedAt": now}}} for c in pod["spec"]["containers"]]
    return {"phase": "Running", "startTime": now, "conditions": ready, "containerStatuses": statuses}


def is_ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def mark_ready(kube: Kube, namespace: str, selector: str = "") -> list[str]:
    """Report every not-yet-ready Pod of the namespace (matching the label selector) Running and Ready."""
    marked = []
    query = {"labelSelector": selector} if selector else {}
    for pod in kube.list("v1", "Pod", namespace, **query):
        if is_ready(pod) or pod["metadata"].get("deletionTimestamp"):
            continue
        try:
            kube.patch_merge("v1", "Pod", pod["metadata"]["name"], namespace, {"status": running_status(pod)}, "status")
            marked.append(pod["metadata"]["name"])
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise
    return marked


class KubeletStandIn:
    """In a background thread, keeps reporting the selected Pods of a namespace Running and Ready."""

    def __init__(self, kube: Kube, namespace: str, selector: str = "", interval: float = 0.5):
        self.kube, self.namespace, self.selector, self.interval = kube, namespace, selector, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kubelet-stand-in", daemon=True)
        self.marked: list[str] = []

    def __enter__(self) -> KubeletStandIn:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.marked += mark_ready(self.kube, self.namespace, self.selector)
            except Exception as exc:  # noqa: BLE001 - a stand-in never kills the test; the next round retries
                log.warning("mark_ready_failed", error=str(exc)[:200])
