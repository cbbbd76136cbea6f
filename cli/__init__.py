"""The `multinode` command line: a thin shell over the SDK."""
