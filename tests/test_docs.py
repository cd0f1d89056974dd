"""The documentation's code runs and its links resolve.

Every block fenced as ```python in README.md, docs/**/*.md and examples/**/*.md
is a complete program: it runs in a fresh interpreter, with warnings as errors,
and must exit cleanly. Fragments that cannot run on their own (shell commands, a
file of a larger project) use another fence language, such as ```console or
```text.
"""

from __future__ import annotations

import bisect
import dataclasses
import importlib
import importlib.util
import itertools
import os
import pkgutil
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC_FILES = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").rglob("*.md")),
    *sorted((ROOT / "examples").rglob("*.md")),
]
SNIPPET_TIMEOUT = 60

# [text](target) or [text](target "title"), the text possibly spanning lines.
_LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
# A code span: a run of backticks, then anything up to a run of the same length.
_CODE_SPAN = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)", re.DOTALL)
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def _mkdocs_setting(key: str) -> str:
    """A top-level ``key: value`` of mkdocs.yml.

    test_packaging checks that the addresses there are the wheel's.
    """
    lines = (ROOT / "mkdocs.yml").read_text(encoding="utf-8").splitlines()
    (value,) = [
        line.removeprefix(f"{key}: ") for line in lines if line.startswith(f"{key}: ")
    ]
    return value


# The project's addresses: links to them are checked against the checkout.
REPOSITORY = _mkdocs_setting("repo_url")
SITE = _mkdocs_setting("site_url")


@dataclass(frozen=True)
class _Block:
    """One fenced code block: where it starts, its language and its text."""

    path: Path
    line: int
    language: str
    code: str


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _split(path: Path) -> tuple[list[_Block], list[tuple[int, str]]]:
    """Return the fenced blocks of a Markdown file and its other lines."""
    blocks: list[_Block] = []
    prose: list[tuple[int, str]] = []
    fence: str | None = None
    language = ""
    start = 0
    body: list[str] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if fence is None:
            match = re.match(r"(`{3,}|~{3,})\s*([^\s`]*)", stripped)
            if match:
                fence, language, start, body = match[1], match[2], number, []
            else:
                prose.append((number, line))
        elif stripped.startswith(fence) and not stripped.strip(fence[0]):
            # dedent: a fence inside a list item is indented.
            code = textwrap.dedent("\n".join(body)) + "\n"
            blocks.append(_Block(path, start, language, code))
            fence = None
        else:
            body.append(line)
    assert fence is None, f"{_relative(path)}:{start}: unclosed code fence"
    return blocks, prose


def _python_blocks() -> list[_Block]:
    return [
        block
        for path in DOC_FILES
        for block in _split(path)[0]
        if block.language == "python"
    ]


def _block_ids(blocks: list[_Block]) -> list[str]:
    """Name each block by its file and its position there: ``docs/asgi.md:3``."""
    ids: list[str] = []
    counts: dict[Path, int] = {}
    for block in blocks:
        counts[block.path] = counts.get(block.path, 0) + 1
        ids.append(f"{_relative(block.path)}:{counts[block.path]}")
    return ids


def _slug(heading: str, seen: dict[str, int]) -> str:
    """Return GitHub's anchor for a heading, counting repeats as it does."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    slug = re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")
    count = seen.get(slug, 0)
    seen[slug] = count + 1
    return slug if count == 0 else f"{slug}-{count}"


def _anchors(path: Path) -> set[str]:
    """Headings' anchors, and the objects an API page documents (``::: name``).

    mkdocstrings gives each documented object its dotted path as anchor.
    """
    seen: dict[str, int] = {}
    anchors: set[str] = set()
    for _, line in _split(path)[1]:
        if match := re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line):
            anchors.add(_slug(match[1], seen))
        elif match := re.match(r":::\s+(\S+)", line):
            anchors.add(match[1])
    return anchors


def _links(path: Path) -> list[tuple[int, str]]:
    """Return the line number and target of every link outside code."""
    prose = _split(path)[1]
    text = "\n".join(line for _, line in prose)
    # Blank out inline code, keeping offsets, so `[a](b)` in code is no link.
    text = _CODE_SPAN.sub(lambda match: " " * len(match[0]), text)
    starts = list(itertools.accumulate(len(line) + 1 for _, line in prose))
    return [
        (prose[bisect.bisect_right(starts, match.start())][0], match[1])
        for match in _LINK.finditer(text)
    ]


_BLOCKS = _python_blocks()


def test_docs_have_python_blocks() -> None:
    """The README and the docs hold runnable examples to test."""
    assert len(DOC_FILES) > 1
    assert _BLOCKS


@pytest.mark.parametrize("block", _BLOCKS, ids=_block_ids(_BLOCKS))
def test_python_block_runs(block: _Block, tmp_path: Path) -> None:
    """A ```python block runs as a program: exit status 0, no traceback."""
    script = tmp_path / "snippet.py"
    script.write_text(block.code, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-W", "error", str(script)],
        cwd=tmp_path,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=SNIPPET_TIMEOUT,
        check=False,
    )
    where = f"{_relative(block.path)}, block starting at line {block.line}"
    assert result.returncode == 0, f"{where} failed:\n{result.stderr}"
    assert "Traceback" not in result.stderr, f"{where} printed:\n{result.stderr}"


def _local(path: Path, target: str) -> Path | None:
    """Return the checkout's file or folder a link names, or None for the web.

    A relative link names a file beside ``path``. The project's own addresses
    name files here too, so the links that must be absolute (on the package's
    index page, or from the site to a file outside ``docs/``) are checked all
    the same: ``REPOSITORY/blob/main/<path>`` and ``REPOSITORY/tree/main/<path>``
    name ``<path>``, and ``SITE/<page>/`` names ``docs/<page>.md`` or
    ``docs/<page>/index.md``.
    """
    file_part = target.partition("#")[0]
    for prefix in (f"{REPOSITORY}/blob/main/", f"{REPOSITORY}/tree/main/"):
        if file_part.startswith(prefix):
            return ROOT / file_part.removeprefix(prefix)
    if file_part.startswith(SITE):
        page = file_part.removeprefix(SITE).strip("/")
        if not page:
            return ROOT / "docs" / "index.md"
        as_file = ROOT / "docs" / f"{page}.md"
        return as_file if as_file.is_file() else ROOT / "docs" / page / "index.md"
    if _SCHEME.match(target):
        return None
    return (path.parent / file_part).resolve() if file_part else path


@pytest.mark.parametrize("path", DOC_FILES, ids=_relative)
def test_links_resolve(path: Path) -> None:
    """Every link into the project names an existing file, and its anchor a heading."""
    broken: list[str] = []
    for number, target in _links(path):
        linked = _local(path, target)
        if linked is None:
            continue
        anchor = target.partition("#")[2]
        if not linked.exists():
            broken.append(f"line {number}: {target} (no such file)")
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            broken.append(f"line {number}: {target} (no such heading)")
    assert not broken, f"{_relative(path)}: broken links:\n" + "\n".join(broken)


def test_readme_gives_the_contributor_commands() -> None:
    """The README's Contributing section opens with demo, test and docs commands.

    The README is also the package's page on the index, so it opens with what
    the toolkit is for a user; a contributor finds the commands under its own
    heading.
    """
    blocks, prose = _split(ROOT / "README.md")
    (heading,) = [number for number, line in prose if line == "## Contributing"]
    first = next(block for block in blocks if block.line > heading)
    commands = [line.split("#")[0].strip() for line in first.code.splitlines()]
    assert commands == [
        "python dev.py demo",
        "python dev.py test",
        "python dev.py docs",
    ]


def test_readme_links_work_from_the_package_index() -> None:
    """The README's links are absolute: on the index page, relative ones break."""
    relative = [
        f"line {number}: {target}"
        for number, target in _links(ROOT / "README.md")
        if not _SCHEME.match(target)
    ]
    assert not relative


def _public_modules() -> list[str]:
    """Every public module of both packages: no part of its name starts with _."""
    import adapters
    import correlation

    return [
        "correlation",
        *(
            info.name
            for package in (correlation, adapters)
            for info in pkgutil.iter_modules(package.__path__, f"{package.__name__}.")
            if not info.name.rpartition(".")[2].startswith("_")
        ),
    ]


def test_api_reference_covers_the_public_api() -> None:
    """The reference's page-by-page list is exactly the public API.

    The docs build (``python dev.py docs``) fails when a page of that list
    renders without one of its names; this test fails when a public name (a
    module's ``__all__``, a ``Config`` field) is missing from the list, or the
    list names something that is not public.
    """
    from correlation import Config

    spec = importlib.util.spec_from_file_location(
        "api_names", ROOT / "docs" / "_hooks" / "api_names.py"
    )
    assert spec is not None
    assert spec.loader is not None
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    listed = [name for names in hook.PAGES.values() for name in names]
    public = [
        f"{module}.{name}"
        for module in _public_modules()
        for name in importlib.import_module(module).__all__
    ]
    fields = [
        f"correlation.Config.{field.name}" for field in dataclasses.fields(Config)
    ]
    assert len(listed) == len(set(listed))
    assert set(listed) == {*public, *fields}
    assert len(public) > 20
