"""A real Kubernetes control plane (etcd + kube-apiserver, no kubelet) for the operator's tests."""
