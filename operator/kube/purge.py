"""The retention purge as a CronJob on `spec.retention.purgeSchedule` (UTC)."""

from __future__ import annotations

from userpipeline.operator.kube.client import Obj
from userpipeline.operator.kube.parts import Context, Outcome, apply_children
from userpipeline.operator.kube.pods import container_security, pod_security, resources, store_env
from userpipeline.operator.kube.settings import CONFIG_DIR, CONFIG_PATH

CONDITION = "PurgeJob"


def cron_job(ctx: Context) -> Obj:
    settings = ctx.settings
    container = {
        "name": "purge",
        "image": settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": settings.purge_command,
        "env": store_env(ctx) + [{"name": "USERPIPELINE_CONFIG", "value": CONFIG_PATH}],
        "volumeMounts": [{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True}],
        "securityContext": container_security(),
        "resources": resources("100m", "256Mi"),
    }
    pod = {
        "restartPolicy": "OnFailure",
        "automountServiceAccountToken": False,
        "securityContext": pod_security(),
        "containers": [container],
        "volumes": [{"name": "config", "configMap": {"name": ctx.child_name("config")}}],
    }
    return {
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": ctx.metadata(ctx.child_name("purge"), "purge"),
        "spec": {
            "schedule": ctx.spec.retention.purge_schedule,
            "timeZone": "Etc/UTC",
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 3600,
            "successfulJobsHistoryLimit": 1,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {"spec": {"backoffLimit": 2, "activeDeadlineSeconds": 3600,
                                     "template": {"metadata": {"labels": ctx.labels("purge")}, "spec": pod}}},
        },
    }


def reconcile(ctx: Context) -> Outcome:
    schedule = ctx.spec.retention.purge_schedule
    return apply_children(ctx, CONDITION, [cron_job(ctx)], f"schedule '{schedule}' (UTC)",
                          {"purgeSchedule": schedule})
