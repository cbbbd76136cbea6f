"""The `multinode` command line (installed as `multinode_cli`): a thin shell over the public SDK
(`multinode`, `multinode.admin`, `multinode.errors`) and the root of `temporal_workers`. Nothing
imports it; its entry point is `multinode_cli.main:main`."""
