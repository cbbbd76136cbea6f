"""The engine adapter: the SDK's only code that imports temporalio. It turns projects, invocations
and listings into Temporal client calls and translates Temporal's errors into `multinode.errors`.

- `engine`: `Engine`, the facade the SDK's `Client` holds (the SDK sees it as `EnginePort`).
- `projects`, `invocations`, `listing`: its parts (the registry, invocation workflows,
  visibility reads); `page_window` and `project_cache`, the logic under `.list` and `.start`.
- `connection`: connect, the login probe, the namespace's search attributes.
- `converter`: the data converter every Multinode client uses. `attributes`: typed search
  attribute keys. `failures`: Temporal's errors translated. `views`: what listings return.

Imported by the SDK (lazily: `import multinode` stays free of temporalio), the operator side and
worker activities; never by workflows or the function's runtime.
"""
