"""Property-based tests of the header pipeline against the contract's rules.

Each property restates a rule of CONTRACT.md ("Incoming values") as a small
reference model written here, independently of ``correlation._ids``, and lets
hypothesis look for an input where the code and the model part ways.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from hooks_testing import counting_generator
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from log_testing import correlation_logs

from correlation import Config, default_validator, generate_id
from correlation._ids import (
    default_accepts_bytes,
    join_header_values,
    passes_floor,
    resolve,
)

#: No example database (nothing written into the checkout), no deadline (a
#: slow machine is not a failure), and room for the few long values.
PROPERTY = settings(
    database=None,
    deadline=None,
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow],
)

#: What the default generator makes.
HEX32 = re.compile(r"[0-9a-f]{32}")

#: A word every hostile value below starts with, so a log line that holds even
#: a cut-short or escaped piece of it is caught.
MARKER = "EVIL"

DEFAULT_RULE_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:/+=@~"
)

# --- the reference model ------------------------------------------------------


def _strip_blanks(piece: str) -> str:
    """Drop spaces and tabs at both ends, one character at a time."""
    start, end = 0, len(piece)
    while start < end and piece[start] in (" ", "\t"):
        start += 1
    while end > start and piece[end - 1] in (" ", "\t"):
        end -= 1
    return piece[start:end]


def reference_join(occurrences: list[str]) -> str:
    """RFC 9110 list rule: split every occurrence on ",", strip, join with ","."""
    pieces: list[str] = []
    for occurrence in occurrences:
        current: list[str] = []
        for char in occurrence:
            if char == ",":
                pieces.append(_strip_blanks("".join(current)))
                current = []
            else:
                current.append(char)
        pieces.append(_strip_blanks("".join(current)))
    return ",".join(pieces)


def reference_floor(value: str) -> bool:
    """The hard floor: 1 to 1024 characters, each from "!" to "~"."""
    return 1 <= len(value) <= 1024 and all(0x21 <= ord(c) <= 0x7E for c in value)


def reference_rule(value: str) -> bool:
    """The default rule: 1 to 128 letters, digits or -_.:/+=@~."""
    return 1 <= len(value) <= 128 and all(c in DEFAULT_RULE_CHARS for c in value)


def listed_value(incoming: str | None) -> str | None:
    """What the pipeline judges of *incoming*: the list rule applied to it."""
    return None if incoming is None else reference_join([incoming])


# --- strategies ---------------------------------------------------------------

#: Any latin-1 character (controls included), with the list syntax favoured.
LATIN1_CHAR = st.one_of(
    st.sampled_from([",", " ", "\t", "a", "-"]),
    st.characters(min_codepoint=0, max_codepoint=0xFF),
)

SHORT_LATIN1 = st.text(alphabet=LATIN1_CHAR, max_size=40)

#: Latin-1 text up to a few thousand characters: short ones, and short ones
#: repeated, which reaches the long sizes without slow generation.
LATIN1_TEXT = st.one_of(
    SHORT_LATIN1,
    st.builds(lambda text, times: text * times, SHORT_LATIN1, st.integers(1, 150)),
)

OCCURRENCES = st.lists(LATIN1_TEXT, max_size=20)

#: Values the default rule accepts, so acceptance is exercised too.
VALID_IDS = st.text(alphabet=sorted(DEFAULT_RULE_CHARS), min_size=1, max_size=128)

#: Visible ASCII only, up to and a little past the floor's 1024 limit.
VISIBLE = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=60
)
FLOOR_EDGE = st.builds(
    lambda text, size: ((text or "x") * size)[:size],
    VISIBLE,
    st.one_of(st.integers(1, 1030), st.sampled_from([127, 128, 129, 1024, 1025])),
)

#: Any incoming value a request could carry, the joined header included.
INCOMING = st.one_of(
    st.none(),
    LATIN1_TEXT,
    VALID_IDS,
    FLOOR_EDGE,
    OCCURRENCES.map(join_header_values),
)

#: Hostile values: they start with MARKER and fail the hard floor. Each ends
#: in a visible character, so the list rule's stripping cannot repair it.
HOSTILE = st.one_of(
    st.builds(
        lambda head, bad, tail: f"{MARKER}{head}{bad}{tail}!",
        SHORT_LATIN1,
        st.sampled_from(["\r\n", "\r", "\n", "\x00", "\x1b[31m", "\x7f", " ", "é"]),
        LATIN1_TEXT,
    ),
    st.integers(1021, 3000).map(lambda size: MARKER + "x" * size),
)

#: Hostile values that pass the floor but not the default rule (a comma).
HOSTILE_VISIBLE = st.builds(
    lambda head, tail: f"{MARKER}{head},{tail}", VISIBLE, VISIBLE
)


def _predicate_atoms() -> st.SearchStrategy[Callable[[str], bool]]:
    """Small random predicates on a value's length, prefix, suffix and contents."""
    pieces = st.text(alphabet="ab-:0", min_size=1, max_size=3)
    sizes = st.integers(0, 140)
    return st.one_of(
        sizes.map(lambda n: lambda v: len(v) <= n),
        sizes.map(lambda n: lambda v: len(v) >= n),
        pieces.map(lambda p: lambda v: v.startswith(p)),
        pieces.map(lambda p: lambda v: v.endswith(p)),
        pieces.map(lambda p: lambda v: p in v),
        st.just(lambda v: v.isalnum()),
        st.just(lambda v: v.lower() == v),
    )


def _negated(predicate: Callable[[str], bool]) -> Callable[[str], bool]:
    return lambda value: not predicate(value)


@st.composite
def random_validators(draw: st.DrawFn) -> Callable[[str], bool]:
    """A validator built from random predicates combined with and, or, not.

    It also accepts the 32-hex ids of the default generator, which ``Config``
    requires of any validator (it tries the generator at construction).
    """
    atoms = draw(st.lists(_predicate_atoms(), min_size=1, max_size=4))
    negate = draw(st.lists(st.booleans(), min_size=len(atoms), max_size=len(atoms)))
    use_all = draw(st.booleans())
    literals = [
        _negated(atom) if flip else atom
        for atom, flip in zip(atoms, negate, strict=True)
    ]
    combine = all if use_all else any

    def validator(value: str) -> bool:
        if HEX32.fullmatch(value):
            return True
        return combine(literal(value) for literal in literals)

    return validator


# --- helpers --------------------------------------------------------------------


def hostile_forms(value: str) -> set[str]:
    """The hostile value raw, stripped and escaped, none of which may be logged."""
    forms = {MARKER}
    for form in (value, value.strip(" \t")):
        forms |= {form, repr(form)[1:-1], form.encode("unicode_escape").decode()}
    forms.discard("")
    return forms


def counting_ids() -> Callable[[], str]:
    """A generator of ``gen-0``, ``gen-1``, ...; ``Config`` spends ``gen-0``."""
    return counting_generator("gen")


def recording(
    validator: Callable[[str], bool], calls: list[str]
) -> Callable[[str], bool]:
    """Wrap *validator* so every value it is asked about lands in *calls*."""

    def wrapped(value: str) -> bool:
        calls.append(value)
        return validator(value)

    return wrapped


# --- joining ----------------------------------------------------------------------


@PROPERTY
@given(OCCURRENCES)
def test_join_matches_reference_model(occurrences: list[str]) -> None:
    """join_header_values equals the split-strip-join reference for any occurrences."""
    assert join_header_values(occurrences) == reference_join(occurrences)


@PROPERTY
@given(OCCURRENCES, st.sampled_from([",", ", "]))
def test_join_occurrences_equals_server_prejoined(
    occurrences: list[str], joiner: str
) -> None:
    """Occurrences one by one join like the WSGI server's ","- or ", "-joined value."""
    joined_by_server = joiner.join(occurrences)
    assert join_header_values(occurrences) == join_header_values([joined_by_server])


@PROPERTY
@given(OCCURRENCES)
def test_join_is_idempotent(occurrences: list[str]) -> None:
    """Joining an already joined value again changes nothing."""
    joined = join_header_values(occurrences)
    assert join_header_values([joined]) == joined


# --- the floor and the default rule -----------------------------------------------


@PROPERTY
@given(st.one_of(st.text(max_size=40), LATIN1_TEXT, VALID_IDS, FLOOR_EDGE))
def test_floor_and_default_rule_match_reference(value: str) -> None:
    """passes_floor and default_validator agree with the reference rules on any text."""
    assert passes_floor(value) is reference_floor(value)
    assert default_validator(value) is reference_rule(value)


@PROPERTY
@given(st.one_of(LATIN1_TEXT, VALID_IDS, FLOOR_EDGE))
def test_default_rule_on_raw_bytes_matches_reference(value: str) -> None:
    """The ASGI adapter's check of the raw header bytes is the same rule."""
    raw = value.encode("latin-1")
    assert default_accepts_bytes(raw) is reference_rule(value)


@PROPERTY
@given(st.integers(min_value=1, max_value=200))
def test_generate_id_passes_floor_and_default_rule(count: int) -> None:
    """Every generated id is 32 lowercase hex, passes floor and rule, and is new."""
    ids = [generate_id() for _ in range(count)]
    for request_id in ids:
        assert HEX32.fullmatch(request_id), request_id
        assert reference_floor(request_id)
        assert reference_rule(request_id)
        assert passes_floor(request_id)
        assert default_validator(request_id)
    assert len(set(ids)) == count


# --- resolving --------------------------------------------------------------------


@PROPERTY
@given(INCOMING)
@example("0 ")  # the list rule strips it to "0"
@example(" a-1\t, ")
def test_default_config_keeps_exactly_the_rule_passing_values(
    incoming: str | None,
) -> None:
    """Config() keeps a value iff the default rule accepts it; 32 hex replace it."""
    result = resolve(Config(), incoming)
    listed = listed_value(incoming)
    if listed is not None and reference_rule(listed):
        assert result == listed
    else:
        assert result != listed
        assert HEX32.fullmatch(result), result
    assert reference_rule(result)


@PROPERTY
@given(INCOMING)
@example("0 ")  # the list rule strips it to "0"
@example(" a-1\t, ")
def test_permissive_validator_is_held_by_the_floor(incoming: str | None) -> None:
    """A validator accepting everything keeps exactly the floor-passing values."""
    calls: list[str] = []
    config = Config(validator=recording(lambda v: True, calls))
    calls.clear()
    result = resolve(config, incoming)
    listed = listed_value(incoming)
    if listed is not None and reference_floor(listed):
        assert result == listed
        assert calls == [listed]
    else:
        assert result != listed
        assert HEX32.fullmatch(result), result
        assert calls == []
    assert reference_floor(result)


@PROPERTY
@given(INCOMING, random_validators())
def test_random_validator_accepts_only_what_it_and_the_floor_allow(
    incoming: str | None, validator: Callable[[str], bool]
) -> None:
    """Any validator: a kept value passes it and the floor; the rest is replaced."""
    calls: list[str] = []
    config = Config(validator=recording(validator, calls))
    calls.clear()
    result = resolve(config, incoming)
    # The validator only ever sees values that passed the floor, at most once.
    assert len(calls) <= 1
    assert all(reference_floor(value) for value in calls)
    listed = listed_value(incoming)
    expected_kept = listed is not None and reference_floor(listed) and validator(listed)
    if expected_kept:
        assert result == listed
    else:
        assert result != listed
        assert HEX32.fullmatch(result), result
    assert reference_floor(result)


@PROPERTY
@given(st.data(), st.sampled_from(["default", "permissive", "raising"]))
def test_rejected_value_never_returns_nor_reaches_a_log(
    data: st.DataObject, validator_kind: str
) -> None:
    """A rejected value is replaced by 32 hex and no log record holds any of it."""

    def raising(value: str) -> bool:
        if HEX32.fullmatch(value):
            return True
        raise ValueError(f"cannot judge {value!r} {value}")

    validators: dict[str, Callable[[str], bool]] = {
        "default": default_validator,
        "permissive": lambda v: True,
        "raising": raising,
    }
    # A permissive validator keeps floor-passing values, so only the others
    # also get values the floor lets through.
    hostile = data.draw(
        HOSTILE if validator_kind == "permissive" else HOSTILE | HOSTILE_VISIBLE,
        label="hostile",
    )
    config = Config(validator=validators[validator_kind])
    with correlation_logs() as texts:
        result = resolve(config, hostile)
    assert result != hostile
    assert HEX32.fullmatch(result), result
    # The rejection is logged (at DEBUG), and the log does not quote the value.
    assert texts
    for form in hostile_forms(hostile):
        for text in texts:
            assert form not in text, (form[:40], text[:200])


@PROPERTY
@given(st.one_of(INCOMING, HOSTILE), st.sampled_from(["default", "permissive"]))
def test_untrusted_incoming_always_generates(
    incoming: str | None, validator_kind: str
) -> None:
    """trust_incoming=False takes the next generated id and never asks the validator."""
    calls: list[str] = []
    base: Callable[[str], bool] = (
        default_validator if validator_kind == "default" else (lambda v: True)
    )
    config = Config(
        trust_incoming=False,
        generator=counting_ids(),
        validator=recording(base, calls),
    )
    calls.clear()
    assert resolve(config, incoming) == "gen-1"
    assert resolve(config, incoming) == "gen-2"
    assert calls == []


@PROPERTY
@given(
    INCOMING,
    st.sampled_from(
        [ValueError, RuntimeError, KeyError, TypeError, ZeroDivisionError, Exception]
    ),
    _predicate_atoms(),
)
def test_raising_validator_never_propagates(
    incoming: str | None,
    error: type[Exception],
    raises_on: Callable[[str], bool],
) -> None:
    """A validator raising on some values rejects them; it never raises out."""
    raised: list[str] = []

    def validator(value: str) -> bool:
        if value == "gen-0":
            # The sample Config takes from the generator at construction.
            return True
        if raises_on(value):
            raised.append(value)
            raise error(value)
        return default_validator(value)

    config = Config(generator=counting_ids(), validator=validator)
    with correlation_logs() as texts:
        result = resolve(config, incoming)
    listed = listed_value(incoming)
    if raised:
        assert raised == [listed]
        assert result == "gen-1"
        # Only the exception's type is logged, never its message (the value).
        assert any(error.__name__ in text for text in texts)
    elif listed is not None and reference_rule(listed):
        assert result == listed
    else:
        assert result == "gen-1"
