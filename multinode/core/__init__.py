"""The original Multinode's import paths, kept so code written for it runs unchanged:
`multinode.core.invocation` (`InvocationStatus`, `Invocation`) and `multinode.core.errors`.
Nothing lives here; each name is the one defined in `multinode` or `multinode.errors` (README,
"Coming from the original Multinode"). New code imports from `multinode` directly."""
