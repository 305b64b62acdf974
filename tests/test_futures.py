"""Server-side futures, non-blocking calls and remote cancellation."""
from __future__ import annotations

import concurrent.futures

import pytest

from conftest import wait_until
from objects import CustomError, Stage


def test_future_returning_method(served):
    _, proxy = served(Stage())
    fut = proxy.later(21)
    assert isinstance(fut, concurrent.futures.Future)
    assert fut.result(5) == 42


def test_future_exception(served):
    _, proxy = served(Stage())
    fut = proxy.later_fail()
    with pytest.raises(CustomError, match="future failed"):
        fut.result(5)


def test_cancel_cancels_the_server_side_future(served):
    stage = Stage()
    _, proxy = served(stage)
    fut = proxy.pending_future()
    assert not fut.done()
    assert fut.cancel() is True
    with pytest.raises(concurrent.futures.CancelledError):
        fut.result(1)
    wait_until(lambda: stage.last_future.cancelled())


def test_non_blocking_call_of_a_plain_method(served):
    stage = Stage()
    _, proxy = served(stage, proxy_timeout=5)
    fut = proxy.slow.future(0.2)
    assert not fut.done()
    assert proxy.position == 0.0  # other calls proceed meanwhile (another socket)
    assert fut.result(5) == "done"
    assert proxy.move_by.future(2, speed=2).result(5) == 4.0


def test_non_blocking_call_raises_remote_exception(served):
    _, proxy = served(Stage())
    fut = proxy.fail.future("async boom")
    with pytest.raises(CustomError, match="async boom"):
        fut.result(5)


def test_non_blocking_call_of_future_method_chains(served):
    _, proxy = served(Stage())
    assert proxy.later.future(4).result(5) == 8


def test_cancel_non_blocking_plain_call_is_local(served):
    stage = Stage()
    _, proxy = served(stage)
    fut = proxy.blocked.future()
    assert fut.cancel() is True
    assert fut.cancelled()
    stage.release.set()
    assert proxy.position == 0.0


def test_many_futures_pipelined(served):
    _, proxy = served(Stage())
    futs = [proxy.echo.future(i) for i in range(300)]
    assert [f.result(10)[0] for f in futs] == [(i,) for i in range(300)]
