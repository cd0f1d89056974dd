"""Lifetime and isolation tests of the WSGI adapter.

Plain WSGI callables only. These tests pin down when the id is visible (the
app, every chunk of a body that runs after the app returned, the body's
``close()``, threads the request starts) and when it is not: in the server's
own context at any moment, in context copies once the request ended, after an
abandoned body is collected, in other concurrent requests, and in a request
started in a context holding someone else's binding.
"""

from __future__ import annotations

import contextvars
import gc
import io
import queue
import sys
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any
from wsgiref.util import FileWrapper

import pytest
from wsgi_testing import (
    HEX32,
    TIMEOUT,
    Capture,
    Endpoint,
    HeaderList,
    RecordingBody,
    ServerStartResponse,
    assert_unbound,
    checked,
    counting_generator,
    environ_key,
    httpx_client,
    make_environ,
    run_wsgi,
    validated,
    values_of,
    werkzeug_client,
)

from adapters.wsgi import RequestIdMiddleware
from correlation import Config, _context, bound_request_id, get_request_id

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

ENVIRON_ID = "correlation.request_id"


def wrap(app: WSGIApplication, config: Config | None = None) -> WSGIApplication:
    """Return *app* checked by both validators, inside the adapter, inside wsgiref's."""
    return validated(RequestIdMiddleware(checked(app), config=config))


def stack(
    app: WSGIApplication, inner: Config | None = None, outer: Config | None = None
) -> WSGIApplication:
    """Return *app* behind two adapters, with wsgiref's validator between them.

    (werkzeug's lint wraps ``wsgi.input`` in a stream wsgiref's validator
    rejects, so lint runs only next to the app.)
    """
    return validated(RequestIdMiddleware(wrap(app, inner), config=outer))


def close_body(body: Iterable[bytes]) -> None:
    """Call the body's ``close()``, as a server does; it must have one."""
    close = getattr(body, "close", None)
    assert close is not None, body
    close()


def notes_of(exc: BaseException) -> list[str] | None:
    """Return the exception's notes, or ``None`` when it has none."""
    notes = getattr(exc, "__notes__", None)
    return None if notes is None else list(notes)


def assert_note(exc: BaseException, request_id: str) -> None:
    """On 3.11+ the exception names the request once; before, it is untouched."""
    if sys.version_info >= (3, 11):
        assert notes_of(exc) == [f"request_id={request_id}"]
    else:
        assert notes_of(exc) is None


def generator_body(chunks: Iterable[bytes], ids: list[str | None]) -> Iterator[bytes]:
    """A generator body recording the id before each chunk and in its cleanup."""
    try:
        for chunk in chunks:
            ids.append(get_request_id())
            yield chunk
    finally:
        ids.append(get_request_id())


class ContextProbe:
    """A thread that reports ``get_request_id()`` in a given context on demand.

    ``ask()`` is answered by the thread, which runs inside *context*, so the
    answer is what a thread started by the request sees at that moment.
    """

    def __init__(self, context: contextvars.Context) -> None:
        self._questions: queue.Queue[bool] = queue.Queue()
        self._answers: queue.Queue[str | None] = queue.Queue()
        self.thread = threading.Thread(target=context.run, args=(self._serve,))
        self.thread.start()

    def _serve(self) -> None:
        while self._questions.get(timeout=TIMEOUT):
            self._answers.put(get_request_id())

    def ask(self) -> str | None:
        """Return the id the thread sees now."""
        self._questions.put(True)
        return self._answers.get(timeout=TIMEOUT)

    def stop(self) -> None:
        """End the thread and wait for it."""
        self._questions.put(False)
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive()


# --- visibility during the request ----------------------------------------


BODIES = [
    pytest.param("class", id="iterable-with-close"),
    pytest.param("generator", id="generator"),
]


@pytest.mark.parametrize("kind", BODIES)
@pytest.mark.parametrize(
    ("request_headers", "expected"),
    [
        pytest.param([("X-Request-ID", "abc")], "abc", id="incoming"),
        pytest.param([], "gen-1", id="generated"),
    ],
)
def test_id_visible_in_app_every_chunk_and_close(
    kind: str, request_headers: HeaderList, expected: str
) -> None:
    """The app, every chunk and close() see the id; the server's context never."""
    recording = RecordingBody()
    generator_ids: list[str | None] = []

    def make_body() -> Iterable[bytes]:
        if kind == "class":
            return recording
        return generator_body([b"one", b"two", b"three"], generator_ids)

    app = Endpoint(body=make_body)
    config = Config(generator=counting_generator())
    result = run_wsgi(wrap(app, config), make_environ(request_headers))
    assert app.request_id == expected
    assert result.body == b"onetwothree"
    assert result.values("X-Request-ID") == [expected]
    if kind == "class":
        assert recording.chunk_ids == [expected] * 3
        assert recording.close_ids == [expected]
    else:
        # Three chunks, then the generator's own cleanup, run by close().
        assert generator_ids == [expected] * 4
    # Before the call, after it returned, after each chunk and after close().
    assert result.caller_ids == [None] * 6
    assert_unbound()


def test_caller_context_is_clean_between_next_calls() -> None:
    """Driving the body by hand, the caller's own context never holds an id."""
    body = RecordingBody()
    app = Endpoint(body=lambda: body)
    returned = wrap(app)(make_environ([("X-Request-ID", "abc")]), ServerStartResponse())
    assert_unbound()
    iterator = iter(returned)
    chunks = []
    for _ in range(3):
        chunks.append(next(iterator))
        assert_unbound()
    with pytest.raises(StopIteration):
        next(iterator)
    assert_unbound()
    close_body(returned)
    assert_unbound()
    assert chunks == [b"one", b"two", b"three"]
    assert body.chunk_ids == ["abc", "abc", "abc"]
    assert body.close_ids == ["abc"]


def test_generator_cleanup_sees_id_when_server_closes_mid_stream() -> None:
    """A server that stops early: close() runs the generator's cleanup with the id."""
    ids: list[str | None] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return generator_body([b"one", b"two", b"three"], ids)

    returned = wrap(app)(make_environ([("X-Request-ID", "abc")]), ServerStartResponse())
    iterator = iter(returned)
    assert next(iterator) == b"one"
    assert_unbound()
    close_body(returned)
    assert ids == ["abc", "abc"]
    assert_unbound()


def test_thread_started_by_app_sees_id_while_in_flight_and_none_after() -> None:
    """A thread run in a copy of the request context sees the id until close()."""
    probes: list[ContextProbe] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        probes.append(ContextProbe(contextvars.copy_context()))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return RecordingBody()

    returned = wrap(app)(make_environ([("X-Request-ID", "abc")]), ServerStartResponse())
    (probe,) = probes
    try:
        assert probe.ask() == "abc"  # the app returned; the body is pending
        iterator = iter(returned)
        next(iterator)
        assert probe.ask() == "abc"  # mid-stream
        assert_unbound()
        assert list(iterator) == [b"two", b"three"]
        assert probe.ask() == "abc"  # fully iterated, not yet closed
        close_body(returned)
        assert probe.ask() is None  # an id never outlives its request
    finally:
        probe.stop()


def test_close_from_another_thread_ends_the_request() -> None:
    """close() called on another thread than the call still ends the request."""
    copies: list[contextvars.Context] = []
    body = RecordingBody()

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        copies.append(contextvars.copy_context())
        start_response("200 OK", [("Content-Type", "text/plain")])
        return body

    returned = wrap(app)(make_environ([("X-Request-ID", "abc")]), ServerStartResponse())
    assert list(returned) == [b"one", b"two", b"three"]
    outcome: list[BaseException | None] = []

    def close_elsewhere() -> None:
        try:
            close_body(returned)
            assert_unbound()
        except BaseException as exc:  # handed to the test thread below
            outcome.append(exc)
        else:
            outcome.append(None)

    thread = threading.Thread(target=close_elsewhere)
    thread.start()
    thread.join(TIMEOUT)
    assert not thread.is_alive()
    assert outcome == [None]
    assert body.close_ids == ["abc"]
    assert copies[0].run(get_request_id) is None
    assert_unbound()


# --- after the request ----------------------------------------------------


@pytest.mark.parametrize("kind", BODIES)
def test_context_copied_during_request_reads_none_after_close(kind: str) -> None:
    """Once close() ran, a context copied while the request ran reads None."""
    copies: list[contextvars.Context] = []
    ids: list[str | None] = []
    marks: list[object] = []

    def copy_now(index: int) -> None:
        copies.append(contextvars.copy_context())

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        copies.append(contextvars.copy_context())
        marks.append(environ[_context.MARK_KEY])
        start_response("200 OK", [("Content-Type", "text/plain")])
        if kind == "class":
            return RecordingBody(on_chunk=copy_now)
        return generator_body([b"a", b"b"], ids)

    run_wsgi(wrap(app), make_environ([("X-Request-ID", "abc")]))
    assert len(copies) == (4 if kind == "class" else 1)
    (mark,) = marks
    for copied in copies:
        assert copied.run(get_request_id) is None
        # Nor would an adapter further in adopt the ended binding, even when
        # the environ it is handed carries that very binding's mark.
        assert copied.run(_context.outer_binding, mark) is None
        assert copied.run(_context.outer_binding, mark, True) is None


def test_abandoned_body_leaves_caller_clean_and_collection_ends_request() -> None:
    """A body dropped mid-stream without close(): caller clean; del ends the request."""
    copies: list[contextvars.Context] = []
    ids: list[str | None] = []

    marks: list[object] = []

    # A bare app: both validators fail a test whose body is never closed.
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        copies.append(contextvars.copy_context())
        marks.append(environ[_context.MARK_KEY])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return generator_body([b"one", b"two", b"three"], ids)

    environ = make_environ([("X-Request-ID", "abc")])
    returned = RequestIdMiddleware(app)(environ, ServerStartResponse())
    iterator = iter(returned)
    assert next(iterator) == b"one"
    assert_unbound()
    (copied,) = copies
    assert copied.run(get_request_id) == "abc"
    del returned, iterator
    gc.collect()
    assert_unbound()
    assert copied.run(get_request_id) is None
    (mark,) = marks
    assert copied.run(_context.outer_binding, mark) is None
    assert ids[0] == "abc"


# --- errors ---------------------------------------------------------------


class AppError(Exception):
    """An application-defined error."""


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(RuntimeError("boom"), id="runtime-error"),
        pytest.param(KeyError("missing"), id="key-error"),
        pytest.param(AppError("custom"), id="custom"),
    ],
)
def test_app_raising_propagates_same_exception_with_note(error: Exception) -> None:
    """The app's exception propagates as the same object, noted with the id."""
    copies: list[contextvars.Context] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        copies.append(contextvars.copy_context())
        raise error

    with pytest.raises(type(error)) as info:
        run_wsgi(wrap(app), make_environ([("X-Request-ID", "abc")]))
    assert info.value is error
    assert_note(error, "abc")
    assert_unbound()
    assert copies[0].run(get_request_id) is None


class Abort(BaseException):
    """A BaseException that is not an Exception, like a worker's abort signal."""


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(SystemExit(1), id="system-exit"),
        pytest.param(KeyboardInterrupt(), id="keyboard-interrupt"),
        pytest.param(Abort(), id="base-exception-subclass"),
    ],
)
def test_app_raising_base_exception_still_ends_the_request(
    error: BaseException,
) -> None:
    """A BaseException from the app propagates as is and still ends the request."""
    copies: list[contextvars.Context] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        copies.append(contextvars.copy_context())
        raise error

    with pytest.raises(type(error)) as info:
        run_wsgi(wrap(app), make_environ([("X-Request-ID", "abc")]))
    assert info.value is error
    assert_unbound()
    # An id never outlives its request, however the request ended.
    assert copies[0].run(get_request_id) is None


def test_app_raising_after_start_response_keeps_caller_clean() -> None:
    """An app raising after start_response leaves the server's context clean."""
    error = RuntimeError("late")

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        raise error

    config = Config(generator=counting_generator())
    with pytest.raises(RuntimeError) as info:
        run_wsgi(wrap(app, config), make_environ())
    assert info.value is error
    assert_note(error, "gen-1")
    assert_unbound()


@pytest.mark.parametrize("kind", BODIES)
def test_body_raising_carries_note_and_close_still_ends_request(kind: str) -> None:
    """An error while iterating the body is noted; close() still ends the request."""
    error = AppError("stream broke")
    copies: list[contextvars.Context] = []
    recording = RecordingBody([b"one"], error=error)
    ids: list[str | None] = []

    def failing() -> Iterator[bytes]:
        yield from generator_body([b"one"], ids)
        raise error

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        copies.append(contextvars.copy_context())
        start_response("200 OK", [("Content-Type", "text/plain")])
        return recording if kind == "class" else failing()

    server = ServerStartResponse()
    with pytest.raises(AppError) as info:
        run_wsgi(wrap(app), make_environ([("X-Request-ID", "abc")]), server=server)
    assert info.value is error
    assert_note(error, "abc")
    assert_unbound()
    assert copies[0].run(get_request_id) is None
    if kind == "class":
        assert recording.chunk_ids == ["abc"]
        assert recording.close_ids == ["abc"]
    else:
        assert ids == ["abc", "abc"]
    assert values_of(server.headers, "X-Request-ID") == ["abc"]


def raising_app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
    """An app that fails before it starts the response."""
    raise environ["test.error"]


def raising_body(
    environ: WSGIEnvironment, start_response: StartResponse
) -> Iterable[bytes]:
    """An app whose body fails after one chunk."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return RecordingBody([b"x"], error=environ["test.error"])


@pytest.mark.parametrize(
    "app",
    [
        pytest.param(raising_app, id="in-app"),
        pytest.param(raising_body, id="in-body"),
    ],
)
def test_exception_through_stacked_adapters_gets_one_note(
    app: WSGIApplication,
) -> None:
    """Two stacked adapters note an exception once, not once each."""
    error = RuntimeError("failed")
    environ = make_environ([("X-Request-ID", "abc")], **{"test.error": error})
    with pytest.raises(RuntimeError) as info:
        run_wsgi(stack(app), environ)
    assert info.value is error
    assert_note(error, "abc")
    assert_unbound()


# --- bodies that pass through ---------------------------------------------


@pytest.mark.parametrize(
    "make_body",
    [
        pytest.param(lambda: [b"hello ", b"world"], id="list"),
        pytest.param(lambda: (b"hello ", b"world"), id="tuple"),
        pytest.param(lambda: [b"hello world"], id="one-item-list"),
    ],
)
def test_list_and_tuple_bodies_are_returned_untouched(
    make_body: Callable[[], Iterable[bytes]],
) -> None:
    """A list or tuple body comes back as the very same object, len() intact."""
    copies: list[contextvars.Context] = []
    bodies: list[Iterable[bytes]] = []

    # The validator sits only outside: inside, it would wrap the body.
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        copies.append(contextvars.copy_context())
        start_response("200 OK", [("Content-Type", "text/plain")])
        bodies.append(make_body())
        return bodies[-1]

    capture = Capture(RequestIdMiddleware(app))
    result = run_wsgi(validated(capture), make_environ([("X-Request-ID", "abc")]))
    (returned,) = capture.returned
    assert returned is bodies[0]
    assert type(returned) is type(bodies[0])
    assert isinstance(returned, (list, tuple))
    assert len(returned) == len(list(bodies[0]))
    assert result.body == b"hello world"
    assert result.values("X-Request-ID") == ["abc"]
    assert copies[0].run(get_request_id) is None


def test_file_wrapper_body_passes_through_untouched() -> None:
    """A wsgi.file_wrapper body is returned as is, so the server can sendfile."""
    wrappers: list[FileWrapper] = []
    ids: list[str | None] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        ids.append(get_request_id())
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        wrapper: FileWrapper = environ["wsgi.file_wrapper"](
            io.BytesIO(b"file contents"), 4
        )
        wrappers.append(wrapper)
        return wrapper

    capture = Capture(RequestIdMiddleware(app))
    environ = make_environ(
        [("X-Request-ID", "abc")], **{"wsgi.file_wrapper": FileWrapper}
    )
    result = run_wsgi(validated(capture), environ)
    (returned,) = capture.returned
    assert returned is wrappers[0]
    assert type(returned) is FileWrapper
    assert result.body == b"file contents"
    assert result.values("X-Request-ID") == ["abc"]
    assert ids == ["abc"]


class _ClosingFile(io.BytesIO):
    """A file whose close() records the id it runs under."""

    def __init__(self, data: bytes, seen: list[str | None]) -> None:
        super().__init__(data)
        self.seen = seen

    def close(self) -> None:
        self.seen.append(get_request_id())
        super().close()


def test_file_wrapper_close_runs_in_the_request_then_ends_it() -> None:
    """A file wrapper's close() sees the id; then the request's copies read None."""
    closed_under: list[str | None] = []
    copies: list[contextvars.Context] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        copies.append(contextvars.copy_context())
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        wrapper: Iterable[bytes] = environ["wsgi.file_wrapper"](
            _ClosingFile(b"data", closed_under), 2
        )
        return wrapper

    capture = Capture(RequestIdMiddleware(app))
    environ = make_environ(
        [("X-Request-ID", "abc")], **{"wsgi.file_wrapper": FileWrapper}
    )
    result = run_wsgi(capture, environ)
    (returned,) = capture.returned
    assert type(returned) is FileWrapper
    assert result.body == b"data"
    assert closed_under == ["abc"]
    assert copies[0].run(get_request_id) is None
    assert result.caller_ids == [None] * len(result.caller_ids)


class SlottedWrapper:
    """A server's file wrapper type whose instances take no attributes."""

    __slots__ = ("_data",)

    def __init__(self, filelike: io.BytesIO, blksize: int = 8192) -> None:
        self._data = filelike.read()

    def __iter__(self) -> Iterator[bytes]:
        return iter([self._data])


def test_file_wrapper_without_close_ends_the_request_when_returned() -> None:
    """A file wrapper with no close() to hook ends the request as the app returns it."""
    copies: list[contextvars.Context] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        wrapper: Iterable[bytes] = environ["wsgi.file_wrapper"](io.BytesIO(b"x"))
        copies.append(contextvars.copy_context())
        return wrapper

    environ = make_environ(
        [("X-Request-ID", "abc")], **{"wsgi.file_wrapper": SlottedWrapper}
    )
    returned = RequestIdMiddleware(app)(environ, ServerStartResponse())
    assert type(returned) is SlottedWrapper
    assert copies[0].run(get_request_id) is None
    assert list(returned) == [b"x"]


def test_file_wrapper_refusing_a_new_close_ends_the_request_when_returned() -> None:
    """A file wrapper refusing a new close is returned as is; the request ends."""
    copies: list[contextvars.Context] = []
    closed_under: list[str | None] = []

    class ClosingWrapper(SlottedWrapper):
        """A file wrapper type with a close() method and no instance dict."""

        __slots__ = ()

        def close(self) -> None:
            closed_under.append(get_request_id())

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        copies.append(contextvars.copy_context())
        wrapper: Iterable[bytes] = environ["wsgi.file_wrapper"](io.BytesIO(b"y"))
        return wrapper

    environ = make_environ(
        [("X-Request-ID", "abc")], **{"wsgi.file_wrapper": ClosingWrapper}
    )
    returned = RequestIdMiddleware(app)(environ, ServerStartResponse())
    assert type(returned) is ClosingWrapper
    assert copies[0].run(get_request_id) is None
    returned.close()
    assert closed_under == [None]


def test_body_close_raising_carries_the_note_and_ends_the_request() -> None:
    """An exception from the body's close() propagates, noted, and the request ends."""
    boom = RuntimeError("close failed")
    copies: list[contextvars.Context] = []

    class FailingClose:
        """A body whose close() raises."""

        def __iter__(self) -> Iterator[bytes]:
            yield b"x"

        def close(self) -> None:
            copies.append(contextvars.copy_context())
            raise boom

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return FailingClose()

    environ = make_environ([("X-Request-ID", "abc")])
    with pytest.raises(RuntimeError) as caught:
        run_wsgi(RequestIdMiddleware(app), environ)
    assert caught.value is boom
    if sys.version_info >= (3, 11):
        assert boom.__notes__ == ["request_id=abc"]
    assert copies[0].run(get_request_id) is None


def test_body_without_close_ends_on_close_and_closing_twice_is_harmless() -> None:
    """An iterable with no close() of its own ends on close(); closing twice is fine."""
    copies: list[contextvars.Context] = []

    class Plain:
        """An iterable body with no close()."""

        def __iter__(self) -> Iterator[bytes]:
            copies.append(contextvars.copy_context())
            return iter([b"a", b"b"])

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Plain()

    environ = make_environ([("X-Request-ID", "abc")])
    body = RequestIdMiddleware(app)(environ, ServerStartResponse())
    assert list(body) == [b"a", b"b"]
    assert copies[0].run(get_request_id) == "abc"
    close = getattr(body, "close")  # noqa: B009
    close()
    assert copies[0].run(get_request_id) is None
    close()
    assert copies[0].run(get_request_id) is None


# --- memory ---------------------------------------------------------------


class Task:
    """A server's per-request task, built as waitress, wsgiref and werkzeug do.

    It holds the environ, and its ``start_response`` is bound to it. With the
    adapter's stacking mark in the environ that is a reference cycle while
    the request is in flight; once the request ends, nothing the adapter
    keeps may hold the task, so reference counting alone frees it.
    """

    def __init__(self, environ: WSGIEnvironment) -> None:
        self.environ = environ
        self.server = ServerStartResponse()

    def start_response(
        self,
        status: str,
        headers: HeaderList,
        exc_info: OptExcInfo | None = None,
        /,
    ) -> Callable[[bytes], object]:
        return self.server(status, headers, exc_info)


def _list_app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def _generator_app(
    environ: WSGIEnvironment, start_response: StartResponse
) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return generator_body([b"a", b"b"], [])


def _file_app(
    environ: WSGIEnvironment, start_response: StartResponse
) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    wrapper: Iterable[bytes] = environ["wsgi.file_wrapper"](io.BytesIO(b"data"))
    return wrapper


def _raising_app(
    environ: WSGIEnvironment, start_response: StartResponse
) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    raise AppError("boom")


def _serve(task: Task, app: WSGIApplication, how: str) -> None:
    """Serve one request of *task* as a server would, then drop everything."""
    middleware = RequestIdMiddleware(app)
    if how == "raises":
        try:
            middleware(task.environ, task.start_response)
        except AppError:
            return
        raise AssertionError("the app's error did not propagate")
    body = middleware(task.environ, task.start_response)
    iterator = iter(body)
    assert next(iterator)
    if how == "abandoned":
        return  # never closed: dropped with this frame
    list(iterator)
    close = getattr(body, "close", None)
    if close is not None:
        close()


@pytest.mark.parametrize(
    ("app", "how", "file_wrapper"),
    [
        pytest.param(_list_app, "closed", FileWrapper, id="list"),
        pytest.param(_generator_app, "closed", FileWrapper, id="generator"),
        pytest.param(_generator_app, "abandoned", FileWrapper, id="abandoned"),
        pytest.param(_file_app, "closed", FileWrapper, id="file-wrapper"),
        pytest.param(_file_app, "closed", SlottedWrapper, id="file-wrapper-no-close"),
        pytest.param(_raising_app, "raises", FileWrapper, id="app-raises"),
    ],
)
def test_an_ended_request_is_freed_without_the_cyclic_collector(
    app: WSGIApplication, how: str, file_wrapper: type
) -> None:
    """Once the request ends, reference counting frees the server's task."""
    task = Task(
        make_environ([("X-Request-ID", "abc")], **{"wsgi.file_wrapper": file_wrapper})
    )
    gone = weakref.ref(task)
    gc.collect()
    gc.disable()
    try:
        _serve(task, app, how)
        assert task.server.calls, "the app never started its response"
        del task
        assert gone() is None, "a reference cycle keeps the ended request alive"
    finally:
        gc.enable()
    assert_unbound()


def test_start_response_called_after_the_request_ended_raises() -> None:
    """A start_response kept past the request's end fails loudly, server untouched."""
    kept: list[StartResponse] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        kept.append(start_response)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    server = ServerStartResponse()
    assert RequestIdMiddleware(app)(make_environ(), server) == [b"ok"]
    (start_response,) = kept
    with pytest.raises(
        RuntimeError, match="start_response was called after the request ended"
    ):
        start_response("500 Internal Server Error", [])
    assert len(server.calls) == 1


# --- stacked adapters -----------------------------------------------------


STACKS = [
    # outer config, inner config, expected id: (no header, valid, hostile)
    pytest.param({}, {}, ("outer-1", "abc", "outer-1"), id="same-twice"),
    pytest.param(
        {},
        {"header_name": "X-Correlation-ID"},
        ("outer-1", "abc", "outer-1"),
        id="inner-other-name",
    ),
    pytest.param(
        {"header_name": "X-Correlation-ID"},
        {},
        ("outer-1", "corr", "outer-1"),
        id="outer-other-name",
    ),
    pytest.param(
        {"trust_incoming": False},
        {},
        ("outer-1", "outer-1", "outer-1"),
        id="outer-untrusting",
    ),
    pytest.param(
        {"update_request_header": False},
        {},
        ("outer-1", "abc", "outer-1"),
        id="outer-keeps-header",
    ),
    pytest.param(
        {"response_header": False},
        {"header_name": "X-Correlation-ID"},
        ("outer-1", "abc", "outer-1"),
        id="outer-silent",
    ),
    pytest.param(
        {},
        {"response_header": False, "update_request_header": False},
        ("outer-1", "abc", "outer-1"),
        id="inner-silent",
    ),
]

REQUESTS = [
    pytest.param(0, [], id="no-header"),
    pytest.param(
        1, [("X-Request-ID", "abc"), ("X-Correlation-ID", "corr")], id="valid"
    ),
    pytest.param(
        2,
        [("X-Request-ID", "evil\r\nx"), ("X-Correlation-ID", "evil\x00")],
        id="hostile",
    ),
]


@pytest.mark.parametrize(("outer_kwargs", "inner_kwargs", "expected"), STACKS)
@pytest.mark.parametrize(("case", "request_headers"), REQUESTS)
def test_stacked_adapters_agree_on_one_id(
    outer_kwargs: dict[str, Any],
    inner_kwargs: dict[str, Any],
    expected: tuple[str, str, str],
    case: int,
    request_headers: HeaderList,
) -> None:
    """Two stacked adapters agree on one id; one header per name in the response."""
    request_id = expected[case]
    outer = Config(generator=counting_generator("outer"), **outer_kwargs)
    inner = Config(generator=counting_generator("inner"), **inner_kwargs)
    body = RecordingBody()
    app = Endpoint(body=lambda: body)
    environ = make_environ(request_headers)
    result = run_wsgi(stack(app, inner, outer), environ)

    assert app.request_id == request_id
    assert body.chunk_ids == [request_id] * 3
    assert body.close_ids == [request_id]
    assert environ[ENVIRON_ID] == request_id
    for name in {outer.header_name, inner.header_name}:
        configs = [c for c in (outer, inner) if c.header_name == name]
        echoed = any(c.response_header for c in configs)
        assert result.values(name) == ([request_id] if echoed else []), name
        if any(c.update_request_header for c in configs):
            assert environ[environ_key(name)] == request_id
    assert result.caller_ids == [None] * 6
    assert_unbound()


def test_stacked_adapters_end_the_request_once_on_close() -> None:
    """With two adapters, a context copied in the app reads None after close()."""
    copies: list[contextvars.Context] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        copies.append(contextvars.copy_context())
        start_response("200 OK", [("Content-Type", "text/plain")])
        return RecordingBody()

    stacked = stack(app, Config(header_name="X-Correlation-ID"))
    returned = stacked(make_environ([("X-Request-ID", "abc")]), ServerStartResponse())
    assert list(returned) == [b"one", b"two", b"three"]
    assert copies[0].run(get_request_id) == "abc"
    close_body(returned)
    assert copies[0].run(get_request_id) is None
    assert_unbound()


# --- bindings left in the calling context ---------------------------------


#: Who may have bound the id a request finds in its calling context: an ASGI
#: adapter (whose live binding an unmarked environ would adopt), a WSGI
#: adapter, or a unit of work (``bound_request_id``, a carried call).
BINDERS = [
    pytest.param("asgi", id="asgi-binding"),
    pytest.param("wsgi", id="wsgi-binding"),
    pytest.param(None, id="unit-of-work"),
]


@pytest.mark.parametrize("protocol", BINDERS)
@pytest.mark.parametrize(
    ("request_headers", "trust_incoming", "expected"),
    [
        pytest.param([], True, "gen-1", id="no-header"),
        pytest.param([("X-Request-ID", "mine")], True, "mine", id="own-header"),
        pytest.param(
            [("X-Request-ID", "stale-id")], False, "gen-1", id="stale-id-untrusted"
        ),
    ],
)
def test_stale_binding_in_calling_context_never_leaks(
    request_headers: HeaderList,
    trust_incoming: bool,
    expected: str,
    protocol: str | None,
) -> None:
    """A request started in a copy of an ended request's context gets a fresh id."""
    earlier = contextvars.copy_context()
    binding = earlier.run(_context.begin, "stale-id", protocol)
    # The server copies the earlier request's context; then that request ends.
    leftover = earlier.run(contextvars.copy_context)
    earlier.run(_context.end, binding)
    assert leftover.run(_context._BINDING.get) is binding
    assert leftover.run(get_request_id) is None

    body = RecordingBody()
    app = Endpoint(body=lambda: body)
    config = Config(trust_incoming=trust_incoming, generator=counting_generator())
    environ = make_environ(request_headers)
    result = leftover.run(run_wsgi, wrap(app, config), environ)

    assert app.request_id == expected
    assert body.chunk_ids == [expected] * 3
    assert body.close_ids == [expected]
    assert result.values("X-Request-ID") == [expected]
    assert environ[ENVIRON_ID] == expected
    # The server's context is as it was: the ended binding, reading None.
    assert result.caller_ids == [None] * 6
    assert leftover.run(_context._BINDING.get) is binding
    assert binding.request_id is None


@pytest.mark.parametrize(
    "protocol",
    [
        # A WSGI request in flight whose app makes an in-process request (a
        # test client in a view): WSGI middleware pass the environ on, mark
        # and all, so a fresh environ is a request of its own.
        pytest.param("wsgi", id="wsgi-request"),
        # A bound_request_id block or a carried call: never adopted.
        pytest.param(None, id="unit-of-work"),
    ],
)
@pytest.mark.parametrize(
    ("request_headers", "expected"),
    [
        pytest.param([], "gen-1", id="no-header"),
        pytest.param([("X-Request-ID", "mine")], "mine", id="different-header"),
        pytest.param([("X-Request-ID", "bad value")], "gen-1", id="invalid-header"),
    ],
)
def test_active_binding_of_another_request_is_not_taken_over(
    request_headers: HeaderList, expected: str, protocol: str | None
) -> None:
    """A binding in flight in the calling context is not adopted, nor ended."""
    other = contextvars.copy_context()
    binding = other.run(_context.begin, "other-request", protocol)
    try:
        body = RecordingBody()
        app = Endpoint(body=lambda: body)
        config = Config(generator=counting_generator())
        environ = make_environ(request_headers)
        result = other.run(run_wsgi, wrap(app, config), environ)

        assert app.request_id == expected
        assert body.chunk_ids == [expected] * 3
        assert body.close_ids == [expected]
        assert result.values("X-Request-ID") == [expected]
        assert environ[ENVIRON_ID] == expected
        assert environ["HTTP_X_REQUEST_ID"] == expected
        # The other request still runs, untouched, in the caller's context.
        assert result.caller_ids == ["other-request"] * 6
        assert other.run(_context._BINDING.get) is binding
        assert binding.request_id == "other-request"
        # The environ carries the inner request's own mark, not the other one.
        assert environ[_context.MARK_KEY] is not binding
    finally:
        other.run(_context.end, binding)


@pytest.mark.parametrize(
    "trust_incoming",
    [pytest.param(True, id="trusting"), pytest.param(False, id="untrusting")],
)
def test_outer_asgi_adapter_rewriting_the_header_is_agreed_with(
    trust_incoming: bool,
) -> None:
    """An outer adapter that bound the id and rewrote the header is followed."""
    # What an ASGI adapter in front of asgiref's WsgiToAsgi leaves behind: its
    # binding in the context and the id in the header, nothing in the environ.
    outer = contextvars.copy_context()
    binding = outer.run(_context.begin, "outer-id", "asgi")
    try:
        body = RecordingBody()
        app = Endpoint(body=lambda: body)
        config = Config(trust_incoming=trust_incoming, generator=counting_generator())
        environ = make_environ([("X-Request-ID", "outer-id")])
        result = outer.run(run_wsgi, wrap(app, config), environ)

        assert app.request_id == "outer-id"
        assert body.chunk_ids == ["outer-id"] * 3
        assert body.close_ids == ["outer-id"]
        assert result.values("X-Request-ID") == ["outer-id"]
        assert environ[ENVIRON_ID] == "outer-id"
        # The outer adapter owns the request's lifetime: it is still running.
        assert outer.run(_context._BINDING.get) is binding
        assert binding.request_id == "outer-id"
        assert environ[_context.MARK_KEY] is binding
    finally:
        outer.run(_context.end, binding)


@pytest.mark.parametrize(
    "inner_rewrites",
    [pytest.param(True, id="inner-rewrites"), pytest.param(False, id="inner-keeps")],
)
@pytest.mark.parametrize(
    "request_headers",
    [
        pytest.param([], id="no-header"),
        pytest.param([("X-Request-ID", "client-value")], id="valid-client-header"),
        pytest.param([("X-Request-ID", "bad value")], id="invalid-header"),
        pytest.param([("X-Request-ID", "x" * 2000)], id="too-long-for-the-floor"),
    ],
)
def test_outer_asgi_binding_is_adopted_whatever_the_header_says(
    request_headers: HeaderList, inner_rewrites: bool
) -> None:
    """Behind WsgiToAsgi the live ASGI binding decides, the header left alone.

    What an ASGI adapter with ``update_request_header=False`` in front of
    asgiref's WsgiToAsgi leaves behind: its binding in the context, the
    client's own header (or none) in the environ, and no mark. The inner
    adapter writes what its own config asks for, with the outer id.
    """
    outer = contextvars.copy_context()
    binding = outer.run(_context.begin, "outer-id", "asgi")
    try:
        body = RecordingBody()
        app = Endpoint(body=lambda: body)
        config = Config(
            update_request_header=inner_rewrites, generator=counting_generator()
        )
        environ = make_environ(request_headers)
        sent = environ.get("HTTP_X_REQUEST_ID")
        result = outer.run(run_wsgi, wrap(app, config), environ)

        assert app.request_id == "outer-id"
        assert body.chunk_ids == ["outer-id"] * 3
        assert body.close_ids == ["outer-id"]
        assert result.values("X-Request-ID") == ["outer-id"]
        assert environ[ENVIRON_ID] == "outer-id"
        expected_header = "outer-id" if inner_rewrites else sent
        assert app.snapshot.get("HTTP_X_REQUEST_ID") == expected_header
        assert environ[_context.MARK_KEY] is binding
        # The outer adapter owns the request's lifetime: the inner one neither
        # ended it nor bound anything over it.
        assert result.caller_ids == ["outer-id"] * 6
        assert outer.run(_context._BINDING.get) is binding
        assert binding.request_id == "outer-id"
    finally:
        outer.run(_context.end, binding)


@pytest.mark.parametrize(
    "request_headers",
    [
        pytest.param([], id="no-header"),
        pytest.param([("X-Request-ID", "client-value")], id="different-header"),
    ],
)
def test_outer_asgi_adapter_marking_its_scope_is_agreed_with(
    request_headers: HeaderList,
) -> None:
    """Behind a2wsgi, the outer adapter's mark in environ["asgi.scope"] is followed."""
    outer = contextvars.copy_context()
    binding = outer.run(_context.begin, "outer-id", "asgi")
    try:
        body = RecordingBody()
        app = Endpoint(body=lambda: body)
        scope = {"type": "http", "correlation.binding": binding}
        environ = make_environ(request_headers, **{"asgi.scope": scope})
        config = Config(generator=counting_generator())
        result = outer.run(run_wsgi, wrap(app, config), environ)

        assert app.request_id == "outer-id"
        assert body.chunk_ids == ["outer-id"] * 3
        assert body.close_ids == ["outer-id"]
        assert result.values("X-Request-ID") == ["outer-id"]
        assert environ["HTTP_X_REQUEST_ID"] == "outer-id"
        assert environ[ENVIRON_ID] == "outer-id"
        assert outer.run(_context._BINDING.get) is binding
        assert binding.request_id == "outer-id"
    finally:
        outer.run(_context.end, binding)


def test_scope_mark_of_another_binding_is_not_followed() -> None:
    """An environ["asgi.scope"] mark naming another request's binding is ignored.

    The live binding in the calling context is an ASGI adapter's, which an
    unmarked environ would adopt (asgiref's bridge): a mark naming another
    binding says this environ is not that adapter's request.
    """
    elsewhere_context = contextvars.copy_context()
    elsewhere = elsewhere_context.run(_context.begin, "elsewhere", "asgi")
    other = contextvars.copy_context()
    binding = other.run(_context.begin, "other-request", "asgi")
    try:
        app = Endpoint(body=RecordingBody)
        scope = {"type": "http", "correlation.binding": elsewhere}
        environ = make_environ([], **{"asgi.scope": scope})
        config = Config(generator=counting_generator())
        result = other.run(run_wsgi, wrap(app, config), environ)
        assert app.request_id == "gen-1"
        assert result.values("X-Request-ID") == ["gen-1"]
        assert environ[ENVIRON_ID] == "gen-1"
        assert result.caller_ids == ["other-request"] * 6
        assert other.run(_context._BINDING.get) is binding
        assert binding.request_id == "other-request"
        assert elsewhere.request_id == "elsewhere"
    finally:
        other.run(_context.end, binding)
        elsewhere_context.run(_context.end, elsewhere)


# --- in-process requests of their own --------------------------------------

IN_PROCESS_CLIENTS = [
    pytest.param("werkzeug", id="werkzeug-client"),
    pytest.param("httpx", id="httpx-wsgi-transport"),
]

#: The in-process request's own header, and the id it must get.
OWN_HEADERS = [
    pytest.param({"X-Request-ID": "client-1"}, "client-1", id="valid-header"),
    pytest.param({}, "gen-1", id="no-header"),
    pytest.param({"X-Request-ID": "bad value"}, "gen-1", id="invalid-header"),
]


def get_in_process(
    client: str, app: WSGIApplication, headers: dict[str, str]
) -> list[str]:
    """GET / on *app* in this thread and context; return the response's ids.

    Through werkzeug's test client or httpx's WSGI transport; the body is read
    and closed before this returns.
    """
    if client == "werkzeug":
        response = werkzeug_client(app).get("/", headers=headers)
        try:
            assert response.status_code == 200
            assert response.get_data() == b"onetwothree"
            return response.headers.getlist("X-Request-ID")
        finally:
            response.close()
    with httpx_client(app) as http:
        reply = http.get("/", headers=headers)
    assert reply.status_code == 200
    assert reply.content == b"onetwothree"
    return reply.headers.get_list("X-Request-ID")


@pytest.mark.parametrize(("request_headers", "expected"), OWN_HEADERS)
@pytest.mark.parametrize("client", IN_PROCESS_CLIENTS)
def test_request_inside_a_bound_request_id_block_is_a_request_of_its_own(
    client: str, request_headers: dict[str, str], expected: str
) -> None:
    """An in-process request in a bound_request_id block gets its own id.

    The adapter never adopts a block's id: the app sees the client's valid
    header or a generated id. Afterwards the block's id is current again,
    and contexts copied during the request read None.
    """
    copies: list[contextvars.Context] = []
    body = RecordingBody(
        on_chunk=lambda index: copies.append(contextvars.copy_context())
    )
    app = Endpoint(body=lambda: body)
    middleware = wrap(app, Config(generator=counting_generator()))
    with bound_request_id("block-id") as block_id:
        echoed = get_in_process(client, middleware, request_headers)
        after = get_request_id()
        copied_after = [copied.run(get_request_id) for copied in copies]
    assert get_request_id() is None
    assert block_id == "block-id"
    assert after == "block-id"
    assert app.request_id == expected
    assert body.chunk_ids == [expected] * 3
    assert body.close_ids == [expected]
    assert echoed == [expected]
    assert app.snapshot[ENVIRON_ID] == expected
    assert app.snapshot["HTTP_X_REQUEST_ID"] == expected
    assert copied_after == [None] * 3


@pytest.mark.parametrize(("request_headers", "expected"), OWN_HEADERS)
@pytest.mark.parametrize("client", IN_PROCESS_CLIENTS)
def test_request_made_inside_a_wsgi_request_is_a_request_of_its_own(
    client: str, request_headers: dict[str, str], expected: str
) -> None:
    """A request a WSGI app makes in process to a wrapped app gets its own id.

    The inner environ is a new one, without the outer request's mark, and
    the outer binding is a WSGI adapter's, which no adapter adopts from an
    unmarked environ. The outer request keeps its id throughout.
    """
    inner = Endpoint(body=RecordingBody)
    inner_app = wrap(inner, Config(generator=counting_generator()))
    outer_seen: list[str | None] = []
    outer_marks: list[object] = []

    def outer_app(
        environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        outer_marks.append(environ[_context.MARK_KEY])
        outer_seen.append(get_request_id())
        echoed = get_in_process(client, inner_app, request_headers)
        outer_seen.append(get_request_id())
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [",".join(echoed).encode("ascii")]

    outer_config = Config(generator=counting_generator("outer"))
    result = run_wsgi(wrap(outer_app, outer_config), make_environ())
    assert result.values("X-Request-ID") == ["outer-1"]
    assert outer_seen == ["outer-1", "outer-1"]
    assert inner.request_id == expected
    assert result.body == expected.encode("ascii")
    assert inner.snapshot[ENVIRON_ID] == expected
    assert inner.snapshot[_context.MARK_KEY] is not outer_marks[0]
    assert result.caller_ids == [None] * 4


# --- concurrency and thread reuse -----------------------------------------


WORKERS = 8
REQUESTS_IN_ALL = 50


def test_concurrent_requests_each_see_only_their_own_id() -> None:
    """50 requests on 8 reused threads: app, chunks and close see only their id."""
    # The first WORKERS requests meet mid-stream, so they truly overlap.
    barrier = threading.Barrier(WORKERS, timeout=TIMEOUT)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        environ["test.app_id"] = get_request_id()
        start_response("200 OK", [("Content-Type", "text/plain")])
        index = environ["test.index"]

        def on_chunk(chunk_index: int) -> None:
            if index < WORKERS and chunk_index == 1:
                barrier.wait()

        body = RecordingBody(on_chunk=on_chunk)
        environ["test.body"] = body
        return body

    middleware = wrap(app)

    def serve_one(index: int) -> tuple[int, str]:
        assert_unbound()
        sent = None if index % 5 == 0 else f"req-{index}"
        headers = [] if sent is None else [("X-Request-ID", sent)]
        environ = make_environ(headers, **{"test.index": index})
        result = run_wsgi(middleware, environ)
        (final,) = result.values("X-Request-ID")
        if sent is None:
            assert HEX32.fullmatch(final)
        else:
            assert final == sent
        body: RecordingBody = environ["test.body"]
        assert environ["test.app_id"] == final
        assert environ[ENVIRON_ID] == final
        assert body.chunk_ids == [final] * 3
        assert body.close_ids == [final]
        assert result.caller_ids == [None] * 6
        assert_unbound()
        return threading.get_ident(), final

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = [pool.submit(serve_one, i) for i in range(REQUESTS_IN_ALL)]
        outcomes = [future.result(timeout=TIMEOUT) for future in futures]

    threads = {ident for ident, _ in outcomes}
    finals = [final for _, final in outcomes]
    assert len(threads) == WORKERS  # so threads were reused
    assert len(set(finals)) == REQUESTS_IN_ALL
    assert not barrier.broken


def test_interleaved_requests_in_one_thread_stay_apart() -> None:
    """Bodies of ten requests iterated in turn on one thread never mix ids."""
    bodies: list[RecordingBody] = []

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        bodies.append(RecordingBody())
        return bodies[-1]

    middleware = wrap(app)
    returned = [
        middleware(make_environ([("X-Request-ID", f"r{i}")]), ServerStartResponse())
        for i in range(10)
    ]
    iterators = [iter(body) for body in returned]
    for _ in range(3):
        for iterator in iterators:
            next(iterator)
            assert_unbound()
    for body in reversed(returned):
        close_body(body)
        assert_unbound()
    for i, recording in enumerate(bodies):
        assert recording.chunk_ids == [f"r{i}"] * 3
        assert recording.close_ids == [f"r{i}"]


def test_reused_thread_gets_fresh_id_after_earlier_request() -> None:
    """One thread serving A, then a request without header: a fresh id, never A."""
    app = Endpoint(body=RecordingBody)
    middleware = wrap(app)

    def serve(headers: HeaderList) -> tuple[int, str]:
        result = run_wsgi(middleware, make_environ(headers))
        assert_unbound()
        (final,) = result.values("X-Request-ID")
        return threading.get_ident(), final

    with ThreadPoolExecutor(max_workers=1) as pool:
        thread_a, id_a = pool.submit(serve, [("X-Request-ID", "a")]).result(TIMEOUT)
        thread_b, id_b = pool.submit(serve, []).result(TIMEOUT)

    assert thread_a == thread_b
    assert id_a == "a"
    assert HEX32.fullmatch(id_b)
    assert app.ids == ["a", id_b]
