"""`get_deployed_function` from an application that does not import the tasks: name the result
type (`returns=`) or annotate the handle with the whole signature."""

from __future__ import annotations

from typing import Any, assert_type

import multinode as mn
from multinode import Function, get_deployed_function


async def deployed(invocation_id: str) -> None:
    untyped = get_deployed_function("tsp", "solve")
    assert_type(untyped, Function[..., Any])
    untyped.start(1, "anything", flag=True)  # unknown parameters: anything goes

    solve = get_deployed_function("tsp", "solve", returns=float)
    assert_type(solve, Function[..., float])
    assert_type(solve.await_result(invocation_id), float)
    assert_type(await solve.call_remote.aio(50), float)
    assert_type(get_deployed_function("tsp", "route", "ver-0", returns=list[int]).call_remote(), list[int])

    work: Function[[int, str], bool] = mn.get_deployed_function("p", "work")
    assert_type(work.start(1, "a"), str)
    assert_type(await work.await_result.aio(invocation_id), bool)
    work.start("a", 1)  # type: ignore[arg-type]
    solve.await_result(invocation_id).upper()  # type: ignore[attr-defined]
    get_deployed_function("tsp", "solve", returns="float")  # type: ignore[call-overload]
