"""`python -m userpipeline.operator.kube [kopf run options]`: run the operator.

Without `-n/--namespace` options it watches all namespaces. Standalone (no peering): run one replica.
"""

from __future__ import annotations

import sys

from kopf.cli import main as kopf_main


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if not any(a in ("-n", "--namespace", "-A", "--all-namespaces") or a.startswith("--namespace=") for a in args):
        args.append("--all-namespaces")
    kopf_main(["run", "--standalone", "-m", "userpipeline.operator.kube.main", *args], standalone_mode=True)


if __name__ == "__main__":
    main()
