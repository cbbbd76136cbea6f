"""The local container backend: one process per attempt, forked from a fork server per version
environment, limited by cgroups where the machine allows.

Imported by the worker only.
"""
