"""The kopf operator that reconciles UserPipeline resources (run: `python -m userpipeline.operator.kube`)."""
