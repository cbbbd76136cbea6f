"""Workflows: thin and deterministic, no I/O. Type names come from `multinode.contract.names`.

Imported by the worker only; they import the contract and never the SDK's engine adapter.
"""
