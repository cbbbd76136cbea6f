"""The engine adapter: the SDK's only code that imports temporalio. It turns projects, invocations
and listings into Temporal client calls and translates Temporal's errors into `multinode.errors`.

Imported by the SDK, the operator side and worker activities; never by workflows or the function's
runtime.
"""
