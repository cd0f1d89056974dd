"""Config: its shape, its defaults, and every error raised at construction."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import pickle
import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from correlation import Config, default_validator, generate_id
from correlation._config import GENERATOR_SAMPLES, shown


def _fail_generator() -> str:
    raise RuntimeError("no ids today")


def _raise_on_anything(value: str) -> bool:
    raise LookupError("validator broke")


def _reject_everything(value: str) -> bool:
    return False


def test_fields_names_and_order() -> None:
    """Config has exactly the contract's fields, in the contract's order."""
    names = [field.name for field in dataclasses.fields(Config)]
    assert names == [
        "header_name",
        "trust_incoming",
        "generator",
        "validator",
        "transformer",
        "response_header",
        "update_request_header",
        "fallback_sources",
    ]


def test_field_defaults() -> None:
    """Every field has the contract's default."""
    defaults = {field.name: field.default for field in dataclasses.fields(Config)}
    assert defaults == {
        "header_name": "X-Request-ID",
        "trust_incoming": True,
        "generator": generate_id,
        "validator": default_validator,
        "transformer": None,
        "response_header": True,
        "update_request_header": True,
        "fallback_sources": (),
    }
    config = Config()
    assert config.header_name == "X-Request-ID"
    assert config.trust_incoming is True
    assert config.generator is generate_id
    assert config.validator is default_validator
    assert config.transformer is None
    assert config.response_header is True
    assert config.update_request_header is True
    assert config.fallback_sources == ()


def test_default_generator_output() -> None:
    """The default generator returns distinct ids of 32 lowercase hex characters."""
    generator = Config().generator
    ids = {generator() for _ in range(100)}
    assert len(ids) == 100
    assert all(re.fullmatch(r"[0-9a-f]{32}", value) for value in ids)


def test_is_frozen_slotted_keyword_only_dataclass() -> None:
    """Config is a frozen, slots, keyword-only dataclass."""
    assert dataclasses.is_dataclass(Config)
    assert all(field.kw_only for field in dataclasses.fields(Config))
    assert "__slots__" in vars(Config)
    assert not hasattr(Config(), "__dict__")


def test_positional_arguments_are_rejected() -> None:
    """Config("X-Trace-ID") raises TypeError: every field is keyword-only."""
    make: Callable[..., Config] = Config
    with pytest.raises(TypeError):
        make("X-Trace-ID")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        pytest.param("header_name", "X-Other", id="header_name"),
        pytest.param("trust_incoming", False, id="trust_incoming"),
        pytest.param("generator", generate_id, id="generator"),
        pytest.param("validator", default_validator, id="validator"),
        pytest.param("transformer", str.lower, id="transformer"),
        pytest.param("response_header", False, id="response_header"),
        pytest.param("update_request_header", False, id="update_request_header"),
        pytest.param("fallback_sources", ("X-Other",), id="fallback_sources"),
    ],
)
def test_fields_cannot_be_assigned(name: str, value: object) -> None:
    """Assigning or deleting any field raises FrozenInstanceError."""
    config = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(config, name, value)
    with pytest.raises(dataclasses.FrozenInstanceError):
        delattr(config, name)
    assert getattr(config, name) == getattr(Config(), name)


def test_equality_and_hash() -> None:
    """Equal configs compare and hash equal; a differing field makes them unequal."""
    assert Config() == Config()
    assert hash(Config()) == hash(Config())
    custom = Config(header_name="X-Trace-ID", trust_incoming=False)
    assert custom == Config(trust_incoming=False, header_name="X-Trace-ID")
    assert custom != Config()
    assert len({Config(), Config(), custom}) == 2
    assert {Config(): "default"}[Config()] == "default"


def test_replace_validates_again() -> None:
    """dataclasses.replace builds a new Config and runs the same checks."""
    config = dataclasses.replace(Config(), header_name="X-Trace-ID")
    assert config.header_name == "X-Trace-ID"
    with pytest.raises(ValueError, match="header_name"):
        dataclasses.replace(Config(), header_name="X_Trace")


@pytest.mark.parametrize(
    "header_name",
    [
        pytest.param("X-Request-ID", id="default"),
        pytest.param("x-request-id", id="lowercase"),
        pytest.param("X-Correlation-ID", id="correlation"),
        pytest.param("traceparent", id="traceparent"),
        pytest.param("R", id="one-character"),
        pytest.param("X!#$%&'*+-.^`|~9", id="every-tchar-but-underscore"),
    ],
)
def test_valid_header_names(header_name: str) -> None:
    """Any RFC 9110 token without '_' is accepted as header_name."""
    assert Config(header_name=header_name).header_name == header_name


def test_custom_generator_and_validator_are_accepted() -> None:
    """A working custom generator and validator are stored as given."""

    def generator() -> str:
        return "svc-1"

    def validator(value: str) -> bool:
        return value.startswith("svc-")

    config = Config(generator=generator, validator=validator)
    assert config.generator is generator
    assert config.validator is validator


def test_generator_is_sampled_at_construction() -> None:
    """Construction draws exactly GENERATOR_SAMPLES ids from the generator."""
    calls: list[int] = []

    def generator() -> str:
        calls.append(1)
        return f"gen-{len(calls)}"

    Config(generator=generator)
    assert len(calls) == GENERATOR_SAMPLES


# (keyword arguments, exception type, field named, a fragment of the rule,
# the value whose repr the message shows)
ERROR_CASES = [
    # header_name: not a str
    pytest.param(
        {"header_name": None}, TypeError, "header_name", "str", None, id="header-none"
    ),
    pytest.param(
        {"header_name": b"X-Request-ID"},
        TypeError,
        "header_name",
        "str",
        b"X-Request-ID",
        id="header-bytes",
    ),
    pytest.param(
        {"header_name": 5}, TypeError, "header_name", "str", 5, id="header-int"
    ),
    # header_name: empty
    pytest.param(
        {"header_name": ""},
        ValueError,
        "header_name",
        "non-empty",
        "",
        id="header-empty",
    ),
    # header_name: not an RFC 9110 token
    *(
        pytest.param(
            {"header_name": value},
            ValueError,
            "header_name",
            "token",
            value,
            id=f"header-not-token-{label}",
        )
        for label, value in [
            ("space", "X Request"),
            ("colon", "X-Request-ID:"),
            ("slash", "X/Y"),
            ("non-ascii", "\u00e9"),
            ("crlf", "x\r\n"),
            ("trailing-lf", "X-Request-ID\n"),
            ("comma", "X,Y"),
            ("quote", 'X"Y'),
        ]
    ),
    # header_name: contains "_"
    pytest.param(
        {"header_name": "X_Request_ID"},
        ValueError,
        "header_name",
        "_",
        "X_Request_ID",
        id="header-underscore",
    ),
    # generator: not callable
    pytest.param(
        {"generator": None}, TypeError, "generator", "callable", None, id="gen-none"
    ),
    pytest.param(
        {"generator": "abc"}, TypeError, "generator", "callable", "abc", id="gen-str"
    ),
    # generator: output fails the hard floor
    *(
        pytest.param(
            {"generator": (lambda output=output: output)},
            ValueError,
            "generator",
            "hard floor",
            output,
            id=f"gen-floor-{label}",
        )
        for label, output in [
            ("empty", ""),
            ("space", "a b"),
            ("crlf", "a\r\nb"),
            ("too-long", "a" * 2000),
            ("1025-characters", "a" * 1025),
            ("non-ascii", "caf\u00e9"),
            ("int", 5),
            ("none", None),
        ]
    ),
    # generator: output fails the validator
    pytest.param(
        {"generator": lambda: "has,comma"},
        ValueError,
        "generator",
        "validator",
        "has,comma",
        id="gen-fails-default-rule",
    ),
    pytest.param(
        {"generator": lambda: "a" * 129},
        ValueError,
        "generator",
        "validator",
        "a" * 129,
        id="gen-too-long-for-default-rule",
    ),
    pytest.param(
        {"generator": lambda: "svc-1", "validator": _reject_everything},
        ValueError,
        "generator",
        "validator",
        "svc-1",
        id="gen-fails-custom-validator",
    ),
    pytest.param(
        {"validator": _raise_on_anything},
        ValueError,
        "generator",
        "validator",
        LookupError("validator broke"),
        id="validator-raises-on-gen-output",
    ),
    # generator: raises
    pytest.param(
        {"generator": _fail_generator},
        ValueError,
        "generator",
        "raised",
        RuntimeError("no ids today"),
        id="gen-raises",
    ),
    # validator: not callable
    pytest.param(
        {"validator": None}, TypeError, "validator", "callable", None, id="val-none"
    ),
    pytest.param(
        {"validator": "^[a-z]+$"},
        TypeError,
        "validator",
        "callable",
        "^[a-z]+$",
        id="val-str",
    ),
    # transformer: not callable (None is the default: no transformer)
    pytest.param(
        {"transformer": "lower"},
        TypeError,
        "transformer",
        "callable",
        "lower",
        id="transformer-str",
    ),
    pytest.param(
        {"transformer": 0},
        TypeError,
        "transformer",
        "callable",
        0,
        id="transformer-int",
    ),
    # fallback_sources: what it holds, and no header read twice
    pytest.param(
        {"fallback_sources": "X-Correlation-ID"},
        TypeError,
        "fallback_sources",
        "tuple",
        "X-Correlation-ID",
        id="fallback-a-bare-str",
    ),
    pytest.param(
        {"fallback_sources": (b"X-Correlation-ID",)},
        TypeError,
        "fallback_sources",
        "Source",
        b"X-Correlation-ID",
        id="fallback-bytes-entry",
    ),
    pytest.param(
        {"fallback_sources": ("X_Correlation_ID",)},
        ValueError,
        "fallback_sources",
        "'_'",
        "X_Correlation_ID",
        id="fallback-underscore",
    ),
    pytest.param(
        {"fallback_sources": ("Cookie",)},
        ValueError,
        "fallback_sources",
        "own",
        "Cookie",
        id="fallback-reserved",
    ),
    pytest.param(
        {"fallback_sources": ("x-request-id",)},
        ValueError,
        "fallback_sources",
        "twice",
        "x-request-id",
        id="fallback-repeats-header-name",
    ),
    pytest.param(
        {"fallback_sources": ("X-A", "x-a")},
        ValueError,
        "fallback_sources",
        "twice",
        "x-a",
        id="fallback-repeats-itself",
    ),
    # bool fields given non-bools
    *(
        pytest.param(
            {name: value},
            TypeError,
            name,
            "bool",
            value,
            id=f"{name}-{type(value).__name__}",
        )
        for name in ("trust_incoming", "response_header", "update_request_header")
        for value in (1, 0, "yes", None)
    ),
]


@pytest.mark.parametrize(("kwargs", "error", "field", "rule", "given"), ERROR_CASES)
def test_construction_errors(
    kwargs: dict[str, Any],
    error: type[Exception],
    field: str,
    rule: str,
    given: object,
) -> None:
    """A Config that cannot work raises at once, naming field, rule and value."""
    with pytest.raises(error) as info:
        Config(**kwargs)
    assert type(info.value) is error
    message = str(info.value)
    assert field in message
    assert rule in message
    # The value as error messages show it: at most its first 100 characters.
    assert shown(given) in message


def test_generator_error_keeps_the_cause() -> None:
    """The ValueError for a raising generator chains the generator's exception."""
    with pytest.raises(ValueError, match="generator") as info:
        Config(generator=_fail_generator)
    assert isinstance(info.value.__cause__, RuntimeError)


def test_validator_with_untestable_result_fails_at_construction() -> None:
    """A validator result with no truth value fails construction with ValueError."""

    class Untestable:
        def __bool__(self) -> bool:
            raise RuntimeError("no truth value")

    def validator(value: str) -> bool:
        return Untestable()  # type: ignore[return-value]

    with pytest.raises(ValueError, match="generator"):
        Config(validator=validator)


# --- contract v3: reserved names, quoted values, sampled generators ----------

#: The header names the contract reserves: HTTP, servers or frameworks own them.
RESERVED = [
    "Host",
    "Content-Length",
    "Content-Type",
    "Content-Encoding",
    "Transfer-Encoding",
    "Connection",
    "Keep-Alive",
    "Proxy-Connection",
    "TE",
    "Trailer",
    "Upgrade",
    "Expect",
    "Cookie",
    "Set-Cookie",
    "Authorization",
    "Proxy-Authorization",
    "Location",
]


@pytest.mark.parametrize("name", RESERVED)
@pytest.mark.parametrize(
    "spelling", [str, str.lower, str.upper], ids=["as-is", "lower", "upper"]
)
def test_reserved_header_names_are_refused(
    name: str, spelling: Callable[[str], str]
) -> None:
    """A header HTTP, the server or the framework own is refused, in any case."""
    value = spelling(name)
    with pytest.raises(ValueError, match="header_name") as info:
        Config(header_name=value)
    message = str(info.value)
    assert "own" in message
    assert repr(value) in message


def test_a_huge_header_name_is_quoted_to_100_characters() -> None:
    """A 300 KB header_name is named in the message by its first 100 characters."""
    value = "X" * 300_000 + " "
    with pytest.raises(ValueError, match="header_name") as info:
        Config(header_name=value)
    message = str(info.value)
    assert repr("X" * 100) in message
    assert "X" * 101 not in message
    assert len(message) < 500


def test_a_huge_generator_output_is_quoted_to_100_characters() -> None:
    """A generator's runaway output appears in the message cut to 100 characters."""
    output = "y" * 50_000
    with pytest.raises(ValueError, match="generator") as info:
        Config(generator=lambda: output)
    assert "y" * 101 not in str(info.value)
    assert len(str(info.value)) < 1000


def test_a_huge_repr_is_quoted_to_100_characters() -> None:
    """A non-callable whose repr is huge is shown by its first 100 characters."""

    class Huge:
        def __repr__(self) -> str:
            return "<" + "z" * 10_000 + ">"

    with pytest.raises(TypeError, match="validator") as info:
        Config(validator=Huge())  # type: ignore[arg-type]
    assert "z" * 101 not in str(info.value)


def test_a_generator_that_fits_only_sometimes_is_caught() -> None:
    """A generator failing the validator every other call fails construction."""
    calls = itertools.count()

    def generator() -> str:
        return "good" if next(calls) % 2 == 0 else "bad,value"

    with pytest.raises(ValueError, match="generator"):
        Config(generator=generator)


def _is_uuid4(value: str) -> bool:
    """A validator a service on UUID4 ids uses (asgi-correlation-id's defaults)."""
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return False
    return parsed.version == 4 and parsed.hex == value


def test_a_uuid4_validator_accepts_the_default_generator() -> None:
    """A UUID4-only validator and the built-in generator make a working Config."""
    config = Config(validator=_is_uuid4)
    for _ in range(1000):
        assert _is_uuid4(config.generator())


def test_custom_validator_message_asks_for_a_matching_generator() -> None:
    """With a custom validator, the message says to pass a generator that fits it."""
    with pytest.raises(ValueError, match="pass a generator") as info:
        Config(validator=lambda value: value.startswith("svc-"))
    assert "generator" in str(info.value)


def test_precomputed_slots_are_not_fields() -> None:
    """What the request path reads is no field, repr entry or compared value."""
    config = Config()
    assert "_default_rule" not in {f.name for f in dataclasses.fields(Config)}
    assert "_default_rule" not in repr(config)
    assert "_default_rule" not in dataclasses.asdict(config)
    assert config._default_rule is True
    assert Config(trust_incoming=False)._default_rule is False
    assert Config(validator=_is_uuid4)._default_rule is False
    # A transformer rewrites accepted values: the inline rule cannot decide.
    assert Config(transformer=str.lower)._default_rule is False
    assert config._builtin_generator is True
    replaced = dataclasses.replace(config, trust_incoming=False)
    assert replaced._default_rule is False


@pytest.mark.parametrize(
    "duplicate",
    [
        pytest.param(copy.copy, id="copy"),
        pytest.param(copy.deepcopy, id="deepcopy"),
        pytest.param(lambda c: pickle.loads(pickle.dumps(c)), id="pickle"),
    ],
)
def test_copies_are_working_configs(duplicate: Callable[[Config], Config]) -> None:
    """A copied or unpickled Config equals the original and is precomputed."""
    original = Config(header_name="X-Trace-ID", trust_incoming=False)
    twin = duplicate(original)
    assert twin == original
    assert twin._default_rule is False
    assert twin._builtin_generator is True


def test_config_reports_its_public_module() -> None:
    """Config says it lives in correlation, where users import it from."""
    assert Config.__module__ == "correlation"


def test_fallback_sources_take_names_and_sources_and_keep_a_tuple() -> None:
    """Names and Sources mix; a list is kept as a tuple, so the Config hashes."""
    from correlation import sources

    traceparent = sources.traceparent()
    listed: Any = ["X-Correlation-ID", traceparent]  # typed a tuple; a list works
    config = Config(fallback_sources=listed)
    assert config.fallback_sources == ("X-Correlation-ID", traceparent)
    assert hash(config) == hash(Config(fallback_sources=config.fallback_sources))
    assert [source.name for source in config._fallbacks] == [
        "X-Correlation-ID",
        "traceparent",
    ]
    # Nothing is read from clients that are not trusted.
    assert Config(trust_incoming=False, fallback_sources=("X-A",))._fallbacks == ()
    with pytest.raises(ValueError, match="twice"):
        Config(fallback_sources=(sources.header("X-A"), sources.traceparent("x-a")))
