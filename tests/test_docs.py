"""The documentation's code runs and its links resolve.

Every block fenced as ```python in README.md and docs/*.md is a complete program:
it runs in a fresh interpreter, with warnings as errors, and must exit cleanly.
Fragments that cannot run on their own (shell commands, a file of a larger
project) use another fence language, such as ```console or ```text.
"""

from __future__ import annotations

import bisect
import itertools
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SNIPPET_TIMEOUT = 60

# [text](target) or [text](target "title"), the text possibly spanning lines.
_LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
# A code span: a run of backticks, then anything up to a run of the same length.
_CODE_SPAN = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)", re.DOTALL)
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


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
    seen: dict[str, int] = {}
    return {
        _slug(match[1], seen)
        for _, line in _split(path)[1]
        if (match := re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line))
    }


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


@pytest.mark.parametrize("path", DOC_FILES, ids=_relative)
def test_relative_links_resolve(path: Path) -> None:
    """Every relative link names an existing file, and its anchor a heading."""
    broken: list[str] = []
    for number, target in _links(path):
        if _SCHEME.match(target):
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.is_file():
            broken.append(f"line {number}: {target} (no such file)")
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            broken.append(f"line {number}: {target} (no such heading)")
    assert not broken, f"{_relative(path)}: broken links:\n" + "\n".join(broken)


def test_readme_opens_with_the_two_commands() -> None:
    """The README starts with the demo and test commands, before anything else."""
    blocks, prose = _split(ROOT / "README.md")
    first = blocks[0]
    text_before = [line for number, line in prose if number < first.line]
    assert text_before[0].startswith("# ")
    assert len([line for line in text_before[1:] if line.strip()]) <= 1
    commands = [line.split("#")[0].strip() for line in first.code.splitlines()]
    assert commands == ["python dev.py demo", "python dev.py test"]
