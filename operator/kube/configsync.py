"""Sidecar: mirror one key of one ConfigMap into a file, within a second of every change.

    python -m userpipeline.operator.kube.configsync --configmap NAME --out /etc/userpipeline/pipeline.yaml

Watches the ConfigMap through the API (field selector on its name, so a Role limited by resourceNames
suffices) and replaces the file atomically (write + rename), which the producer's file watcher notices.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import structlog
import typer
from kubernetes import client, watch

from userpipeline.operator.kube.client import ApiException, load_api_client

log = structlog.get_logger("configsync")


def write_atomically(path: Path, text: str) -> bool:
    """Replace the file if its content differs; True when it changed."""
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return True


def sync_once(core: client.CoreV1Api, namespace: str, name: str, key: str, out: Path) -> str | None:
    """Write the current content; returns the list's resourceVersion to watch from."""
    listing = core.list_namespaced_config_map(namespace, field_selector=f"metadata.name={name}")
    for item in listing.items:
        _write(item, key, out)
    return listing.metadata.resource_version if listing.metadata else None


def _write(item: client.V1ConfigMap, key: str, out: Path) -> None:
    meta = item.metadata or client.V1ObjectMeta()
    text = (item.data or {}).get(key)
    if text is None:
        log.warning("key_missing", configmap=meta.name, key=key)
    elif write_atomically(out, text):
        log.info("config_written", path=str(out), resource_version=meta.resource_version)


def run(namespace: str, name: str, key: str, out: Path) -> None:
    core = client.CoreV1Api(load_api_client())
    while True:
        try:
            version = sync_once(core, namespace, name, key, out)
            stream = watch.Watch().stream(core.list_namespaced_config_map, namespace, resource_version=version,
                                          field_selector=f"metadata.name={name}", timeout_seconds=300)
            for event in stream:
                if event["type"] in ("ADDED", "MODIFIED"):
                    _write(event["object"], key, out)
        except ApiException as exc:
            log.warning("watch_failed", status=exc.status, reason=exc.reason, retry_in=2)
            time.sleep(2)  # e.g. 410 Gone after a long disconnect: re-list


def main(
    configmap: str = typer.Option(..., help="ConfigMap to mirror"),
    key: str = typer.Option("pipeline.yaml", help="Key of the ConfigMap to write"),
    out: Path = typer.Option(..., help="File to write"),
    namespace: str = typer.Option("", envvar="POD_NAMESPACE", help="Namespace of the ConfigMap"),
) -> None:
    if not namespace:
        raise typer.BadParameter("set --namespace or POD_NAMESPACE")
    run(namespace, configmap, key, out)


if __name__ == "__main__":
    typer.run(main)
