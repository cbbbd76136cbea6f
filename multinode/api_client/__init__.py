"""The original Multinode's `multinode.api_client.error_types`, kept so code written for it runs
unchanged. There is no HTTP API client any more (the SDK talks to the engine); only the error
names remain, each the class defined in `multinode.errors` (README, "Coming from the original
Multinode")."""
