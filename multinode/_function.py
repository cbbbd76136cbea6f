"""`Function[P, R]`: one deployed function, and everything a caller can do with it.

Every blocking call has an `.aio` twin for event loops (`multinode._call`): `fn.get(id)` from
threads and scripts, `await fn.get.aio(id)` from `async def` code."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from multinode._call import blocking
from multinode._invocation import (
    Invocation,
    InvocationIdsList,
    InvocationStatus,
    check_owner,
    invocation_from_record,
)
from multinode._map import FanOut
from multinode.contract import codec, limits
from multinode.contract.ids import (
    check_invocation_id,
    check_name,
    check_page_offset,
    check_version_id,
    new_invocation_id,
)
from multinode.contract.options import FunctionOptions
from multinode.contract.preview import invocation_summary
from multinode.errors import (
    AwaitTimeoutError,
    FunctionDoesNotExistError,
    InvalidOptionError,
    InvocationCancelledError,
    InvocationFailedError,
    InvocationTimedOutError,
    MultinodeError,
)

if TYPE_CHECKING:
    from multinode._client import Client
    from multinode._port import EnginePort
    from multinode.contract.records import (
        FunctionSpec,
        VersionManifest,
    )

P = ParamSpec("P")
R = TypeVar("R", covariant=True)  # a handle on a function of `int` results is one of `object` results
T = TypeVar("T")

# Set by the worker in a function's process: nested invocations inherit project and version.
ENV_PROJECT = "MULTINODE_PROJECT"
ENV_VERSION = "MULTINODE_VERSION_ID"
ENV_INVOCATION = "MULTINODE_INVOCATION_ID"

# Called with each invocation id this process starts; the function runner listens, so a parent
# that ends without success can have its children cancelled.
child_listeners: list[Callable[[str], None]] = []


class Function(Generic[P, R]):
    """A function that runs remotely. Obtained from `@mn.function()` in a tasks folder or from
    `get_deployed_function(...)` anywhere else."""

    def __init__(
        self,
        name: str,
        *,
        options: FunctionOptions | None = None,
        local_callable: Callable[P, Any] | None = None,
        is_generator: bool = False,
        project_name: str | None = None,
        version_id: str | None = None,
        client: Client[EnginePort] | None = None,
    ) -> None:
        self.name = name
        self.options = options
        self.local_callable = local_callable
        self.is_generator = is_generator
        self._project_name = project_name
        self._version_id = version_id
        self._client = client
        self._pinned: VersionManifest | None = None
        if local_callable is not None:
            self.__doc__ = local_callable.__doc__
            self.__wrapped__ = local_callable

    def __repr__(self) -> str:
        where = self._project_name or os.environ.get(ENV_PROJECT) or "<not deployed>"
        return f"<multinode.Function {where}.{self.name}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Any:
        """Run the function here, in this process (handy in tests)."""
        if self.local_callable is None:
            raise MultinodeError(
                f"{self.name} is a deployed function; run it remotely with .call_remote(...)"
            )
        return self.local_callable(*args, **kwargs)

    # ----- binding ------------------------------------------------------------------------

    @property
    def project_name(self) -> str:
        project = self._project_name or os.environ.get(ENV_PROJECT)
        if not project:
            raise MultinodeError(
                f"function {self.name!r} is not bound to a deployed project; in an application "
                f"use get_deployed_function(project_name=..., function_name={self.name!r})"
            )
        return project

    @property
    def version_id(self) -> str | None:
        """The pinned version, or None for 'the latest at each start'. Inside a running
        function, a nested invocation runs the parent's version."""
        if self._version_id is not None:
            return self._version_id
        if self._project_name is None or self._project_name == os.environ.get(ENV_PROJECT):
            return os.environ.get(ENV_VERSION) or None
        return None

    @property
    def client(self) -> Client[EnginePort]:
        if self._client is None:
            from multinode._client import default_client

            self._client = default_client()
        return self._client

    # ----- start --------------------------------------------------------------------------

    @blocking
    def start(self, /, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, str]:
        """Start an invocation; returns its id (`inv-...`) at once. `await fn.start.aio(...)`
        does the same on the running event loop.

        `lock="key"` (a reserved keyword, kept for code written against the original docs; the
        typed spelling is `start_locked`) starts it only if the key is free.
        """
        lock = kwargs.pop("lock", None)
        key = None if lock is None else _check_lock_key(lock)
        return self._start_async(*codec.encode_arguments(args, dict(kwargs)), lock=key)

    @blocking
    def start_locked(self, lock: str, /, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, str]:
        """Start an invocation only if no other PENDING or RUNNING invocation of the project
        holds `lock`, else raise `LockAlreadyInUseError`; the key is free again when this
        invocation ends, however it ends. Every other argument goes to the function."""
        key = _check_lock_key(lock)
        return self._start_async(*codec.encode_arguments(args, dict(kwargs)), lock=key)

    async def _start_async(self, args: list[str], kwargs: dict[str, str], lock: str | None = None) -> str:
        from multinode.contract.records import InvocationInput, LockInput

        engine = await self.client.engine()
        manifest, spec = await self._spec(engine)
        invocation = InvocationInput(
            invocation_id=new_invocation_id(),
            project_name=manifest.project_name,
            function_name=self.name,
            version_id=manifest.version_id,
            options=spec.options,
            package=manifest.package,
            requirements_sha256=manifest.requirements_sha256,
            secrets_uri=manifest.secrets_uri,
            args=args,
            kwargs=kwargs,
            created_at=time.time(),
            parent_invocation_id=os.environ.get(ENV_INVOCATION) or None,
        )
        if lock is None:
            await engine.start_invocation(invocation, summary=invocation_summary(invocation))
        else:
            await engine.start_locked_invocation(
                LockInput(manifest.project_name, lock, invocation, invocation_summary(invocation))
            )
        for listener in child_listeners:
            listener(invocation.invocation_id)
        return invocation.invocation_id

    async def _spec(self, engine: EnginePort) -> tuple[VersionManifest, FunctionSpec]:
        manifest = await self._manifest(engine)
        spec = manifest.function(self.name)
        if spec is None:
            raise FunctionDoesNotExistError(
                f"version {manifest.version_id} of project {manifest.project_name!r} has no "
                f"function {self.name!r}; it has: "
                + ", ".join(sorted(f.name for f in manifest.functions))
            )
        return manifest, spec

    async def _manifest(self, engine: EnginePort) -> VersionManifest:
        version_id = self.version_id
        if version_id is None:
            return await engine.latest_version(self.project_name)
        if self._pinned is None or self._pinned.version_id != version_id:
            self._pinned = await engine.version(self.project_name, version_id)
        else:
            await engine.latest_version(self.project_name)  # the project may have been undeployed
        return self._pinned

    # ----- reading ------------------------------------------------------------------------

    @blocking
    def get(self, /, invocation_id: str) -> Coroutine[Any, Any, Invocation[R]]:
        """The invocation's status, latest result (or yielded value), error and attempts.
        A malformed or unknown id raises InvocationDoesNotExistError."""
        check_invocation_id(invocation_id)
        return self._get_async(invocation_id)

    async def _get_async(self, invocation_id: str) -> Invocation[R]:
        engine = await self.client.engine()
        record, terminated = await engine.get_invocation(invocation_id)
        check_owner(record, self.project_name, self.name)
        return invocation_from_record(record, terminated)

    @blocking
    def await_result(self, /, invocation_id: str, timeout: float | None = None) -> Coroutine[Any, Any, R]:
        """Wait (on the engine, without polling) until the invocation ends; return its result
        or raise InvocationFailedError / InvocationCancelledError / InvocationTimedOutError.
        After `timeout` seconds, raise AwaitTimeoutError (the invocation goes on)."""
        check_invocation_id(invocation_id)
        return self._await_async(invocation_id, timeout)

    async def _await_async(self, invocation_id: str, timeout: float | None = None) -> R:
        engine = await self.client.engine()
        deadline = asyncio.timeout(timeout)
        try:
            async with deadline:
                record = await engine.await_invocation(invocation_id)
        except TimeoutError:
            if not deadline.expired():
                raise
            raise AwaitTimeoutError(
                f"invocation {invocation_id} did not end within {timeout:g} s; it goes on "
                f"(stop it with .cancel)",
                invocation_id=invocation_id,
            ) from None
        check_owner(record, self.project_name, self.name)
        result: R = _result_or_raise(invocation_from_record(record, terminated=True))
        return result

    @blocking
    def call_remote(self, /, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R]:
        """Start an invocation and wait for its result."""
        return self._call_async(*codec.encode_arguments(args, dict(kwargs)))

    async def _call_async(self, args: list[str], kwargs: dict[str, str]) -> R:
        return await self._await_async(await self._start_async(args, kwargs))

    # ----- cancel and list ----------------------------------------------------------------

    @blocking
    def cancel(self, /, invocation_id: str) -> Coroutine[Any, Any, bool]:
        """Ask the invocation to stop. Returns False, changing nothing, when it had already
        ended."""
        check_invocation_id(invocation_id)
        return self._cancel_async(invocation_id)

    async def _cancel_async(self, invocation_id: str) -> bool:
        engine = await self.client.engine()
        record, ended = await engine.get_invocation(invocation_id)
        check_owner(record, self.project_name, self.name)
        if ended:
            return False
        reply = await engine.cancel_invocation(invocation_id)
        return reply.requested

    @blocking
    def remove(self, /, invocation_id: str) -> Coroutine[Any, Any, None]:
        """Cancel the invocation if it is still PENDING or RUNNING, then delete its data:
        afterwards `.get` raises InvocationDoesNotExistError and `.list` no longer shows it."""
        check_invocation_id(invocation_id)
        return self._remove_async(invocation_id)

    async def _remove_async(self, invocation_id: str) -> None:
        engine = await self.client.engine()
        record, _ = await engine.get_invocation(invocation_id)
        check_owner(record, self.project_name, self.name)
        await engine.remove_invocation(invocation_id)

    @blocking
    def list_ids(self, /) -> Coroutine[Any, Any, list[str]]:
        """Every invocation id of this function, newest first."""
        return self._list_ids_async()

    async def _list_ids_async(self) -> list[str]:
        engine = await self.client.engine()
        ids = {i async for i in engine.function_invocation_ids(self.project_name, self.name)}
        return sorted(ids, reverse=True)

    async def _page_async(self, offset: str | None) -> InvocationIdsList:
        engine = await self.client.engine()
        ids, more = await engine.function_invocations_page(
            self.project_name, self.name, offset, limits.LIST_PAGE_SIZE
        )
        return InvocationIdsList(invocation_ids=ids, offset=ids[-1] if more and ids else None)

    # Defined after every annotation that names the builtin `list`: in the class body this
    # name is the call from here on.
    @blocking
    def list(self, /, offset: str | None = None) -> Coroutine[Any, Any, InvocationIdsList]:
        """The 50 most recent invocation ids, newest first. Pass the returned `offset` back for
        the next page; it is None on the last page. Each invocation appears exactly once across
        the pages, even while invocations finish during the paging."""
        if offset is not None:
            check_page_offset(offset)
        return self._page_async(offset)

    # ----- fan-out ------------------------------------------------------------------------

    @property
    def map(self) -> FanOut[Any, R]:
        """`fn.map(iterable)`: invoke the function once per item; yield results in input order
        as they are ready (`async for r in fn.map.aio(iterable)` on an event loop).
        `return_exceptions=True` yields failures in place; `progress=True` draws a progress
        line on stderr (or on the stream given)."""
        return FanOut(self, star=False)

    @property
    def starmap(self) -> FanOut[tuple[Any, ...], R]:
        """`fn.starmap(iterable_of_tuples)`: like `map`, one argument tuple per invocation."""
        return FanOut(self, star=True)


@overload
def get_deployed_function(
    project_name: str, function_name: str, version_id: str | None = None
) -> Function[..., Any]: ...


@overload
def get_deployed_function(
    project_name: str, function_name: str, version_id: str | None = None, *, returns: type[T]
) -> Function[..., T]: ...


def get_deployed_function(
    project_name: str, function_name: str, version_id: str | None = None, *, returns: object = None
) -> Function[..., Any]:
    """A handle on a deployed function. Without `version_id`, each `.start` uses the project's
    latest version; with it, that version is pinned.

    For type checkers, name the result type (`returns=int` makes `.await_result` an `int`), or
    annotate the handle with the whole signature: `work: Function[[int, str], float] = ...`.
    `returns` is not checked at run time: the function's result is what it returns.
    """
    check_name(project_name, "project name")
    check_name(function_name, "function name")
    if version_id is not None:
        check_version_id(version_id)
    return Function(function_name, project_name=project_name, version_id=version_id)


def _check_lock_key(lock: object) -> str:
    if not isinstance(lock, str) or not lock or len(lock) > 200:
        raise InvalidOptionError(f"lock={lock!r} must be a non-empty string of at most 200 characters")
    return lock




def _result_or_raise(invocation: Invocation[R]) -> R:
    status = invocation.status
    if status == InvocationStatus.SUCCEEDED:
        return invocation.result  # type: ignore[return-value]
    where = f"invocation {invocation.invocation_id} of {invocation.project_name}.{invocation.function_name}"
    if status == InvocationStatus.CANCELLED:
        raise InvocationCancelledError(f"{where} was cancelled", invocation_id=invocation.invocation_id)
    if status == InvocationStatus.TIMED_OUT:
        raise InvocationTimedOutError(
            f"{where} timed out", invocation_id=invocation.invocation_id
        )
    details = invocation.error_details
    message = f"{where} failed: {details}" if details else f"{where} failed"
    if details and details.traceback:
        message += "\n\nRemote traceback:\n" + details.traceback
    raise InvocationFailedError(
        message,
        invocation_id=invocation.invocation_id,
        error_type=details.type if details else None,
        error_message=details.message if details else None,
        remote_traceback=details.traceback if details else None,
    )
