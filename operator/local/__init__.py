"""Local parity: the same UserPipeline spec applied to processes on this machine instead of Kubernetes."""
