"""A real single-node Kubernetes (kubelet + containerd) for tests: see node.node and docs/real-node.md."""
