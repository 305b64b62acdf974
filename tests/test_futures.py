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


# ---------------------------------------------------------------------- the table of a proxy's server-side futures
def _table(told, **settings):
    from pizco_qt.config import Settings
    from pizco_qt.protocol import Protocol
    from pizco_qt.remote_futures import FutureTable

    return FutureTable("tcp://127.0.0.1:5000", Protocol(), Settings(**settings), told.append)


def test_the_table_settles_a_future_whose_outcome_comes_before_or_after_its_reply():
    from pizco_qt import AccessDenied
    from pizco_qt.errors import encode_exception, refusal

    told = []
    table = _table(told)
    early = {"msgid": "a", "result": 1}
    table.on_outcome(early)  # the outcome overtook its reply: kept as an orphan
    assert table.register("a").result(0) == 1 and table.pending_count() == 0
    late = table.register("b")
    assert not late.done() and table.pending_count() == 1
    table.on_outcome({"msgid": "b", "exception": encode_exception(refusal("observer", "no"), "json")[0]})
    assert type(late.exception(0)) is AccessDenied  # read as every 'raise' is (pizco_qt.replies)
    gone = table.register("c")
    table.on_outcome({"msgid": "c", "exception": concurrent.futures.CancelledError()})
    assert gone.cancelled()
    table.on_outcome("not an outcome")
    assert table.pending_count() == 0


def test_the_table_keeps_a_bounded_number_of_orphans():
    table = _table([], max_orphans=2, orphan_expiry=0.0)
    for msgid in "xyz":
        table.on_outcome({"msgid": msgid, "result": msgid})
    assert table.register("z").result(0) == "z"
    for msgid in "xy":  # dropped once there were more than max_orphans
        assert not table.register(msgid).done()


def test_cancelling_tells_the_server_closing_does_not():
    told = []
    table = _table(told)
    first, second = table.register("a"), table.register("b")
    assert first.cancel() and told == ["a"] and table.pending_count() == 1
    table.cancel_all()
    assert second.cancelled() and told == ["a"] and table.pending_count() == 0
