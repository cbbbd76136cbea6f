"""Multinode's worker side: workflows, the attempt activity, container backends."""
