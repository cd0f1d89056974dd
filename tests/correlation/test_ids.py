"""The id pipeline on plain strings: floor, default rule, joining, generating."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hooks_testing import CONSTRUCTION_CALLS, counting_generator
from hostile import MARKER, select

import correlation
from correlation import Config, default_validator, generate_id
from correlation._ids import join_header_values, passes_floor, resolve

# Where the imported package lives, so a subprocess imports the same code.
IMPORT_ROOT = str(Path(correlation.__file__).resolve().parent.parent)

GENERATED = re.compile(r"[0-9a-f]{32}")

UUID = "0f8fad5b-d9cb-469f-a165-70867728950e"

# Every visible ASCII character, "!" to "~".
VISIBLE_ASCII = "".join(chr(code) for code in range(0x21, 0x7F))

# (value, passes the hard floor, passes the default rule)
ID_CASES = [
    pytest.param(UUID, True, True, id="uuid-hyphenated-lowercase"),
    pytest.param(UUID.upper(), True, True, id="uuid-hyphenated-uppercase"),
    pytest.param(UUID.replace("-", ""), True, True, id="uuid-32-hex"),
    pytest.param(f"urn:uuid:{UUID}", True, True, id="uuid-urn"),
    pytest.param("{" + UUID + "}", True, False, id="uuid-braces"),
    pytest.param("3f6c1e1d2b7a4c5d9e8f0a1b2c3d4e5f", True, True, id="nginx-request-id"),
    pytest.param("q83vEjRWeJA+/w==", True, True, id="base64"),
    pytest.param("svc:orders/42@eu~1.b_c", True, True, id="service-prefixed"),
    pytest.param("a", True, True, id="one-character"),
    pytest.param("a" * 128, True, True, id="128-characters"),
    pytest.param("-_.:/+=@~", True, True, id="all-default-punctuation"),
    *(
        pytest.param(f"a{char}b", True, True, id=f"punctuation-{char}")
        for char in "-_.:/+=@~"
    ),
    pytest.param("a" * 129, True, False, id="129-characters"),
    pytest.param("a" * 1024, True, False, id="1024-characters-at-floor"),
    pytest.param("a" * 1025, False, False, id="1025-characters"),
    pytest.param("a" * 2000, False, False, id="2000-characters"),
    pytest.param("a,b", True, False, id="comma-joined-list"),
    pytest.param("a;b", True, False, id="semicolon"),
    pytest.param('a"b', True, False, id="double-quote"),
    pytest.param("<script>", True, False, id="angle-brackets"),
    pytest.param(VISIBLE_ASCII, True, False, id="every-visible-ascii"),
    pytest.param("", False, False, id="empty"),
    pytest.param(" ", False, False, id="one-space"),
    pytest.param(" \t  ", False, False, id="whitespace-only"),
    pytest.param("a b", False, False, id="space-inside"),
    pytest.param("a\tb", False, False, id="tab-inside"),
    pytest.param("a\r\nb", False, False, id="crlf"),
    pytest.param("a\nb", False, False, id="lf"),
    pytest.param("a\rb", False, False, id="bare-cr"),
    pytest.param("abc\r\n", False, False, id="trailing-crlf"),
    pytest.param("a\x00b", False, False, id="nul"),
    pytest.param("\x1b[31mred\x1b[0m", False, False, id="esc-sequence"),
    pytest.param("a\x7fb", False, False, id="del"),
    pytest.param("caf\u00e9", False, False, id="non-ascii-e-acute"),
    pytest.param("id-\U0001f600", False, False, id="emoji"),
    pytest.param(b"caf\xe9".decode("latin-1"), False, False, id="latin-1-decoded"),
    pytest.param("\u00a0abc", False, False, id="no-break-space"),
]


def _sequence_generator(*outputs: object) -> Callable[[], str]:
    """A generator returning *outputs* in turn; an exception instance is raised."""
    # The first output answers every sample Config draws at construction.
    remaining: Iterator[object] = iter(
        [outputs[0]] * (CONSTRUCTION_CALLS - 1) + list(outputs)
    )

    def generator() -> str:
        output = next(remaining)
        if isinstance(output, BaseException):
            raise output
        return output  # type: ignore[return-value]

    return generator


def _accept_all(value: str) -> bool:
    return True


def _assert_generated(result: str, rejected: str | None) -> None:
    assert GENERATED.fullmatch(result), result
    assert result != rejected


@pytest.mark.parametrize(("value", "floor", "rule"), ID_CASES)
def test_passes_floor(value: str, floor: bool, rule: bool) -> None:
    """The hard floor accepts 1 to 1024 visible ASCII characters and nothing else."""
    assert passes_floor(value) is floor


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(None, id="none"),
        pytest.param(5, id="int"),
        pytest.param(b"abc", id="bytes"),
        pytest.param(["abc"], id="list"),
    ],
)
def test_passes_floor_rejects_non_str(value: object) -> None:
    """Anything that is not a str fails the hard floor."""
    assert passes_floor(value) is False


@pytest.mark.parametrize(("value", "floor", "rule"), ID_CASES)
def test_default_validator(value: str, floor: bool, rule: bool) -> None:
    """The default rule accepts 1 to 128 letters, digits and -_.:/+=@~ only."""
    assert default_validator(value) is rule


@pytest.mark.parametrize(("value", "floor", "rule"), ID_CASES)
def test_default_rule_is_inside_the_floor(value: str, floor: bool, rule: bool) -> None:
    """Every value the default rule accepts also passes the hard floor."""
    assert not default_validator(value) or passes_floor(value)


@pytest.mark.parametrize(("value", "floor", "rule"), ID_CASES)
def test_resolve_with_default_config(value: str, floor: bool, rule: bool) -> None:
    """With Config() a value is kept if it passes the rule, else replaced."""
    result = resolve(Config(), value)
    if rule:
        assert result == value
    else:
        _assert_generated(result, value)


@pytest.mark.parametrize(("value", "floor", "rule"), ID_CASES)
def test_resolve_permissive_validator_is_held_by_floor(
    value: str, floor: bool, rule: bool
) -> None:
    """A validator accepting everything still cannot lift the hard floor."""
    result = resolve(Config(validator=lambda v: True), value)
    if floor:
        assert result == value
    else:
        _assert_generated(result, value)


def test_validator_only_sees_values_that_passed_the_floor() -> None:
    """The validator is never called with a value the hard floor rejected."""
    seen: list[str] = []

    def validator(value: str) -> bool:
        seen.append(value)
        return True

    config = Config(validator=validator)
    seen.clear()  # drop the generator's sample checked at construction
    for value in ["a\r\nb", "a b", "a" * 1025, "", "caf\u00e9"]:
        _assert_generated(resolve(config, value), value)
    assert seen == []
    assert resolve(config, "ok") == "ok"
    assert seen == ["ok"]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param(["abc"], "abc", id="single"),
        pytest.param([" abc\t"], "abc", id="single-surrounding-whitespace"),
        pytest.param(["a, b"], "a,b", id="joined-with-comma-space"),
        pytest.param(["a,b"], "a,b", id="joined-with-comma"),
        pytest.param(["a", "b"], "a,b", id="two-occurrences"),
        pytest.param([" a ", "\tb\t"], "a,b", id="two-occurrences-padded"),
        pytest.param(["a ,\tb", "c"], "a,b,c", id="mixed"),
        pytest.param(["  \t "], "", id="whitespace-only"),
        pytest.param(["abc\r\n"], "abc\r\n", id="crlf-not-stripped"),
        pytest.param(["\u00a0abc"], "\u00a0abc", id="no-break-space-not-stripped"),
    ],
)
def test_join_header_values(values: list[str], expected: str) -> None:
    """Occurrences are split on ',', stripped of spaces and tabs, joined with ','."""
    assert join_header_values(values) == expected


def test_join_gives_the_same_string_for_asgi_and_wsgi_shapes() -> None:
    """'a, b', 'a,b' and two occurrences 'a' and 'b' all become 'a,b'."""
    assert {
        join_header_values(["a, b"]),
        join_header_values(["a,b"]),
        join_header_values(["a", "b"]),
    } == {"a,b"}


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param([" abc\t"], "abc", id="single-padded-accepted"),
        pytest.param([f"  {UUID} "], UUID, id="uuid-padded-accepted"),
        pytest.param(["a, b"], None, id="comma-space-list-rejected"),
        pytest.param(["a", "b"], None, id="two-occurrences-rejected"),
        pytest.param([" \t "], None, id="whitespace-only-rejected"),
        pytest.param(["abc\r\n"], None, id="crlf-rejected"),
    ],
)
def test_resolve_joined_header(values: list[str], expected: str | None) -> None:
    """A joined header value is kept when it is one good id, else replaced."""
    result = resolve(Config(), join_header_values(values))
    if expected is None:
        _assert_generated(result, None)
    else:
        assert result == expected


def test_generate_id_is_32_lowercase_hex() -> None:
    """generate_id returns 32 lowercase hex characters."""
    for _ in range(100):
        assert GENERATED.fullmatch(generate_id())


def test_generate_id_is_a_uuid4_in_hex_form() -> None:
    """Every id is a UUID version 4 with the RFC 4122 variant, as uuid4().hex is."""
    for _ in range(10_000):
        value = generate_id()
        parsed = uuid.UUID(value)
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        assert parsed.hex == value


def test_generate_id_keeps_122_random_bits() -> None:
    """Across many ids, every bit outside version and variant takes both values."""
    ids = [int(generate_id(), 16) for _ in range(2_000)]
    fixed = (0xF << 76) | (0x3 << 62)  # version nibble, variant bits
    ones = 0
    zeros = 0
    for value in ids:
        ones |= value
        zeros |= ~value
    varying = ones & zeros & ((1 << 128) - 1)
    assert varying == ((1 << 128) - 1) & ~fixed


def test_generate_id_is_distinct() -> None:
    """generate_id never repeats across many calls."""
    ids = {generate_id() for _ in range(10_000)}
    assert len(ids) == 10_000


def test_generated_id_passes_floor_and_default_rule() -> None:
    """The built-in generator's output passes the floor and the default rule."""
    value = generate_id()
    assert passes_floor(value)
    assert default_validator(value)


def test_resolve_without_incoming_generates() -> None:
    """No header means a new id from the built-in generator, distinct each time."""
    ids = {resolve(Config(), None) for _ in range(1000)}
    assert len(ids) == 1000
    assert all(GENERATED.fullmatch(value) for value in ids)


def test_resolve_without_incoming_uses_custom_generator() -> None:
    """No header means an id from config.generator."""
    config = Config(generator=_sequence_generator("gen-1", "gen-2", "gen-3"))
    assert resolve(config, None) == "gen-2"
    assert resolve(config, None) == "gen-3"


@pytest.mark.parametrize(
    "incoming",
    [
        pytest.param(UUID, id="uuid"),
        pytest.param("abc", id="short"),
        pytest.param(None, id="absent"),
        pytest.param("a\r\nb", id="crlf"),
    ],
)
def test_trust_incoming_false_always_generates(incoming: str | None) -> None:
    """trust_incoming=False ignores even a perfectly valid incoming value."""
    _assert_generated(resolve(Config(trust_incoming=False), incoming), incoming)
    config = Config(
        trust_incoming=False,
        generator=_sequence_generator("gen-1", "gen-2"),
        validator=_accept_all,
    )
    assert resolve(config, incoming) == "gen-2"


def test_validator_that_raises_counts_as_rejection() -> None:
    """A validator raising for a value replaces it, and no exception escapes."""

    def validator(value: str) -> bool:
        if value.startswith("boom"):
            raise RuntimeError(f"cannot check {value}")
        return True

    config = Config(validator=validator)
    _assert_generated(resolve(config, "boom-1"), "boom-1")
    assert resolve(config, "fine-1") == "fine-1"


def test_validator_with_untestable_result_counts_as_rejection() -> None:
    """A validator whose result cannot be truth-tested rejects the value."""

    class Untestable:
        def __bool__(self) -> bool:
            raise RuntimeError("no truth value")

    def validator(value: str) -> bool:
        return value != "odd" or Untestable()  # type: ignore[return-value]

    config = Config(validator=validator)
    _assert_generated(resolve(config, "odd"), "odd")


@pytest.mark.parametrize(
    "second",
    [
        pytest.param(RuntimeError("generator broke"), id="raises"),
        pytest.param(KeyError("gone"), id="raises-keyerror"),
        pytest.param("bad value", id="space"),
        pytest.param("a\r\nb", id="crlf"),
        pytest.param("", id="empty"),
        pytest.param("a" * 1025, id="too-long"),
        pytest.param("caf\u00e9", id="non-ascii"),
        pytest.param(None, id="none"),
        pytest.param(5, id="int"),
        pytest.param(b"abc", id="bytes"),
    ],
)
def test_generator_failing_at_request_time_is_replaced(second: object) -> None:
    """A generator that later raises or fails the floor gives way to the built-in."""
    config = Config(generator=_sequence_generator("gen-1", second, "gen-3"))
    _assert_generated(resolve(config, None), None)
    # Only that request: the next one uses the configured generator again.
    assert resolve(config, None) == "gen-3"


def test_generator_failing_at_request_time_replaces_a_rejected_value() -> None:
    """A rejected incoming value with a broken generator still gets a built-in id."""
    config = Config(generator=_sequence_generator("gen-1", RuntimeError("broke")))
    _assert_generated(resolve(config, "a\r\nb"), "a\r\nb")


def test_generator_output_failing_only_the_validator_is_used() -> None:
    """At request time only the floor is re-checked on the generator's output."""
    config = Config(
        generator=_sequence_generator("first", "not,valid"),
        validator=lambda v: v == "first",
    )
    assert resolve(config, None) == "not,valid"


def _raise_with_value(value: str) -> bool:
    if MARKER in value:
        raise ValueError(f"refusing {value!r} ({value})")
    return True


# (hostile incoming value, config); every value holds the marker "EVIL": the
# hostile table's rows under the default rule, then validators that judge or
# raise on values past the floor.
HOSTILE_CASES = [
    *(pytest.param(row.joined(), Config, id=row.name) for row in select()),
    pytest.param(
        "EVIL-1",
        lambda: Config(validator=lambda v: MARKER not in v),
        id="custom-validator",
    ),
    *(
        pytest.param(
            row.joined(),
            lambda: Config(validator=lambda v: True),
            id=f"{row.name}-permissive-validator",
        )
        for row in select(fails_floor=True)
    ),
    pytest.param(
        "EVIL-2",
        lambda: Config(validator=_raise_with_value),
        id="validator-raises-with-value",
    ),
    pytest.param(
        "EVIL-3",
        lambda: Config(
            validator=_raise_with_value,
            generator=_sequence_generator("gen-1", RuntimeError("gen broke")),
        ),
        id="validator-and-generator-raise",
    ),
]


@pytest.mark.parametrize(("hostile", "make_config"), HOSTILE_CASES)
def test_rejected_value_is_never_logged(
    caplog: pytest.LogCaptureFixture,
    hostile: str,
    make_config: Callable[[], Config],
) -> None:
    """A rejected value appears in no log record, not even escaped or cut short."""
    config = make_config()
    caplog.set_level(logging.DEBUG, logger="correlation")
    result = resolve(config, hostile)
    assert MARKER not in result
    records = [r for r in caplog.records if r.name.startswith("correlation")]
    # The replacement is logged, at DEBUG only.
    assert records
    assert {r.levelno for r in records} == {logging.DEBUG}
    formatter = logging.Formatter("%(message)s")
    for record in records:
        texts = [
            record.getMessage(),
            str(record.args),
            repr(record.args),
            formatter.format(record),
        ]
        for text in texts:
            assert MARKER not in text
            assert hostile not in text
            assert repr(hostile) not in text


# --- the transformer -------------------------------------------------------------


def _shorten(value: str) -> str:
    return value[:8]


def _to_bytes(value: str) -> object:
    return value.encode()


def _raise_quoting(value: str) -> str:
    raise ValueError(f"cannot transform {value}")


@pytest.mark.parametrize(
    ("incoming", "transformer", "expected"),
    [
        pytest.param("ABC-Def-1", str.lower, "abc-def-1", id="lowercased"),
        pytest.param(
            "0f8fad5bd9cb469fa16570867728950e", _shorten, "0f8fad5b", id="cut"
        ),
        pytest.param(" ABC ,", str.lower, None, id="list-rule-then-rule-rejects"),
        pytest.param(" Abc ", str.lower, "abc", id="after-the-list-rule"),
        pytest.param("ok-1", lambda v: v + " x", None, id="result-fails-the-floor"),
        pytest.param("ok-1", lambda v: v + ",x", None, id="result-fails-the-rule"),
        pytest.param("ok-1", lambda v: "", None, id="empty-result"),
        pytest.param("ok-1", _to_bytes, None, id="not-a-str"),
        pytest.param("ok-1", _raise_quoting, None, id="raises"),
        pytest.param("a b", str.lower, None, id="rejected-value-not-transformed"),
    ],
)
def test_transformer_rewrites_accepted_values(
    incoming: str,
    transformer: Callable[[str], Any],
    expected: str | None,
) -> None:
    """An accepted value is transformed; a result that fails or raises is rejected."""
    config = Config(transformer=transformer, generator=counting_generator())
    assert resolve(config, incoming) == ("gen-1" if expected is None else expected)


def test_transformer_output_passes_the_validator_too() -> None:
    """The validator judges the value, then the transformer's result."""
    judged: list[str] = []

    def validator(value: str) -> bool:
        judged.append(value)
        return value.islower() or value.startswith("gen-")

    config = Config(validator=validator, transformer=str.lower)
    judged.clear()
    assert resolve(config, "abc") == "abc"
    assert judged == ["abc", "abc"]
    judged.clear()
    upper_kept = Config(validator=lambda v: True, transformer=str.upper)
    assert resolve(upper_kept, "abc") == "ABC"


def test_generated_ids_are_never_transformed() -> None:
    """Absent, rejected and untrusted values give a generated id as it came."""
    calls: list[str] = []

    def transformer(value: str) -> str:
        calls.append(value)
        return "transformed"

    for config in (
        Config(transformer=transformer, generator=counting_generator()),
        Config(
            transformer=transformer,
            generator=counting_generator(),
            trust_incoming=False,
        ),
    ):
        assert resolve(config, None) == "gen-1"
        assert resolve(config, "a b") == "gen-2"
    assert resolve(Config(transformer=transformer, trust_incoming=False), "ok") != (
        "transformed"
    )
    assert calls == []


def test_transformer_result_is_a_plain_str() -> None:
    """A str subclass from the transformer becomes a plain str."""

    class Tagged(str):
        pass

    result = resolve(Config(transformer=Tagged), "abc")
    assert result == "abc"
    assert type(result) is str


def test_a_raising_transformer_is_logged_without_the_value(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Only the exception's type is logged, never its message (it quotes the value)."""
    caplog.set_level(logging.DEBUG, logger="correlation")
    result = resolve(Config(transformer=_raise_quoting), f"{MARKER}-1")
    assert MARKER not in result
    assert "ValueError" in caplog.text
    assert MARKER not in caplog.text
    for record in caplog.records:
        assert MARKER not in repr(record.args)


# --- fallback sources ------------------------------------------------------------

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"


def _reader(headers: dict[str, str]) -> tuple[Callable[[str], str | None], list[str]]:
    """A ``read`` for resolve over *headers* (case-insensitive), and what it read."""
    asked: list[str] = []
    lowered = {name.lower(): value for name, value in headers.items()}

    def read(name: str) -> str | None:
        asked.append(name)
        return lowered.get(name.lower())

    return read, asked


def _raise_on_read(value: str) -> str:
    raise RuntimeError(f"cannot parse {value}")


@pytest.mark.parametrize(
    ("incoming", "headers", "expected", "asked"),
    [
        pytest.param(
            "primary", {"X-Correlation-ID": "fb"}, "primary", [], id="primary"
        ),
        pytest.param(
            None, {"X-Correlation-ID": "fb"}, "fb", ["X-Correlation-ID"], id="absent"
        ),
        pytest.param(
            "a b", {"X-Correlation-ID": "fb"}, "fb", ["X-Correlation-ID"], id="rejected"
        ),
        pytest.param(
            None,
            {"traceparent": TRACEPARENT},
            TRACE_ID,
            ["X-Correlation-ID", "traceparent"],
            id="second-source",
        ),
        pytest.param(
            None,
            {"X-Correlation-ID": "a b", "traceparent": TRACEPARENT},
            TRACE_ID,
            ["X-Correlation-ID", "traceparent"],
            id="first-rejected",
        ),
        pytest.param(
            None,
            {"X-Correlation-ID": " fb ,", "traceparent": "junk"},
            "gen-1",
            ["X-Correlation-ID", "traceparent", "X-Custom"],
            id="none-accepted",
        ),
        pytest.param(
            None,
            {"X-Correlation-ID": " fb "},
            "fb",
            ["X-Correlation-ID"],
            id="list-rule-applies",
        ),
        pytest.param(
            None,
            {"X-Custom": "anything"},
            "gen-1",
            ["X-Correlation-ID", "traceparent", "X-Custom"],
            id="raising-parser",
        ),
        pytest.param(
            None,
            {},
            "gen-1",
            ["X-Correlation-ID", "traceparent", "X-Custom"],
            id="no-headers",
        ),
    ],
)
def test_fallback_sources_are_read_in_order(
    incoming: str | None, headers: dict[str, str], expected: str, asked: list[str]
) -> None:
    """header_name first, then each source; absent or rejected falls through."""
    from correlation import sources

    config = Config(
        generator=counting_generator(),
        fallback_sources=(
            "X-Correlation-ID",
            sources.traceparent(),
            sources.Source("X-Custom", _raise_on_read),
        ),
    )
    read, seen = _reader(headers)
    assert resolve(config, incoming, read) == expected
    assert seen == asked


def test_fallback_candidates_pass_the_validator_and_the_transformer() -> None:
    """A fallback's candidate is judged like the header's own value."""
    config = Config(
        validator=lambda v: v.startswith(("svc-", "SVC-", "gen-")),
        transformer=str.lower,
        generator=counting_generator(),
        fallback_sources=("X-A", "X-B"),
    )
    read, _ = _reader({"X-A": "other-1", "X-B": "SVC-7"})
    assert resolve(config, None, read) == "svc-7"


def test_untrusted_config_reads_no_fallback() -> None:
    """trust_incoming=False generates without reading any source."""
    config = Config(
        trust_incoming=False,
        generator=counting_generator(),
        fallback_sources=("X-Correlation-ID",),
    )
    read, asked = _reader({"X-Correlation-ID": "fb"})
    assert resolve(config, None, read) == "gen-1"
    assert asked == []


def test_a_rejected_fallback_is_logged_by_its_header_and_length_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The DEBUG line names the fallback header and the length, never the value."""
    caplog.set_level(logging.DEBUG, logger="correlation")
    config = Config(fallback_sources=("X-Correlation-ID",))
    read, _ = _reader({"X-Correlation-ID": f"{MARKER}\r\nInjected: 1"})
    assert MARKER not in resolve(config, None, read)
    assert "X-Correlation-ID" in caplog.text
    assert MARKER not in caplog.text


def test_generate_id_is_distinct_across_threads() -> None:
    """Threads drawing ids at once from the ready-made batch never share one."""
    per_thread = 5_000
    with ThreadPoolExecutor(max_workers=8) as pool:
        batches = list(
            pool.map(lambda _: [generate_id() for _ in range(per_thread)], range(8))
        )
    ids = [request_id for batch in batches for request_id in batch]
    assert len(set(ids)) == len(ids) == 8 * per_thread


def test_forked_child_never_reuses_the_parents_ids() -> None:
    """After fork, the child draws fresh ids, not the rest of the parent's batch.

    Run in a fresh interpreter: forking this test process, which may hold
    threads, is unsafe. The parent draws one id (so a batch is ready), forks,
    and compares the child's next ids with its own next ones.
    """
    script = textwrap.dedent(
        """
        import os, sys
        sys.path.insert(0, sys.argv[1])
        from correlation import generate_id

        generate_id()
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.write(write, " ".join(generate_id() for _ in range(8)).encode())
            os._exit(0)
        os.close(write)
        child = os.read(read, 4096).decode().split()
        os.waitpid(pid, 0)
        parent = [generate_id() for _ in range(80)]
        print(len(child), len(set(child) & set(parent)))
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", script, IMPORT_ROOT],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert completed.stdout.split() == ["8", "0"]
