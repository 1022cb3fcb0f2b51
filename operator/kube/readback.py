"""`Ready` means working: what the upstream controllers report about the children the operator made.

Each check takes the object as the API server returned it (the apply response carries its status) and
says what is wrong with it, in a sentence, or None when it works.
"""

from __future__ import annotations

from userpipeline.operator.kube.client import Obj


def _conditions(obj: Obj) -> dict[str, Obj]:
    return {c.get("type"): c for c in (obj.get("status") or {}).get("conditions") or []}


def deployment_problem(obj: Obj) -> str | None:
    wanted = (obj.get("spec") or {}).get("replicas", 1)
    available = (obj.get("status") or {}).get("availableReplicas") or 0
    if available >= wanted:
        return None
    return f"Deployment {obj['metadata']['name']} has {available}/{wanted} replicas available"


def kafka_topic_problem(obj: Obj) -> str | None:
    ready = _conditions(obj).get("Ready")
    if ready and ready.get("status") == "True":
        return None
    name = obj["metadata"]["name"]
    if not ready:
        return f"KafkaTopic {name} is not Ready yet (Strimzi's Topic Operator has not reconciled it)"
    return f"KafkaTopic {name} is not Ready: {ready.get('reason', '')} {ready.get('message', '')}".strip()


RUNNING = "RUNNING"


def spark_problem(obj: Obj) -> str | None:
    state = ((obj.get("status") or {}).get("applicationState") or {})
    if state.get("state") == RUNNING:
        return None
    name = obj["metadata"]["name"]
    if not state.get("state"):
        return f"SparkApplication {name} is not submitted yet (is the Spark Operator running?)"
    detail = f": {state['errorMessage'][:300]}" if state.get("errorMessage") else ""
    return f"SparkApplication {name} is {state['state']}{detail}"
