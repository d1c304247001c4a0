"""Comments and docs cite only what the repository holds: the paper, or the pages under ``docs/``.

A citation of a design document that is not in the repository ("spec section 7", "metrics.md",
"style 4.5") cannot be followed by a reader; the design the code follows is in ``docs/``. Every
``docs/<page>.md, <Heading>`` or ``docs/<page>.md#<anchor>`` citation must name an existing page and
heading, so that renaming a heading cannot leave dangling citations behind.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SELF = Path(__file__).resolve()
SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".txt", ".cfg", ".ini", ".sh", ".json"}
NAMES = {"Makefile", "Dockerfile", ".env.example"}
#: Top-level folders that are not the project's own text (outputs, environments), and vendored files.
SKIP_TOP = {".git", ".venv", ".dvc", "data", "models", "reports", "mlruns", "node_modules", "dvc_plots"}
VENDORED = ("infra/compose-spec/",)

#: Citations of documents that are not in the repository. ``spec`` alone is fine (``DefectSpec``,
#: ``PeerSpec``, ``spec.name``, Kubernetes ``spec:``, ``compose-spec``): only its use as a document is flagged.
FORBIDDEN = re.compile(
    r"\bspec(?:'s)?\s+(?:sections?\b|table\b|appendix\b|\d)"  # spec section 4.1, spec 7.2, spec's table
    r"|\bthe\s+spec(?:'s)?\b"  # the spec, the spec's hand counts
    r"|\(spec\s*$"  # "(spec" wrapped before "section ..."
    r"|\b(?:glcf_spec|metrics|architecture|stack|style)\.md\b"
    r"|\bpaper\.txt\b"
    r"|\bstyle\s+\d+\.\d+"  # style 4.5
    r"|\b10\s+#\d+",  # numbered-fix references such as "10 #9"
    re.IGNORECASE,
)
DOC_CITATION = re.compile(r"\bdocs/([\w-]+\.md)(?:#([\w-]+)|, ([^\n]*))?")
DOC_LINK = re.compile(r"\]\(([\w-]+\.md)#([\w-]+)\)")
#: Substrings without which a line cannot match FORBIDDEN, or cite docs/.
FORBIDDEN_KEYS = ("spec", ".md", "style", "paper.txt", "#")
DOC_KEYS = ("docs/", ".md#")


def _tracked_files() -> list[Path]:
    """The repository's tracked text files (git), or a walk of the tree where git is not available."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=30
        ).stdout.decode()
        paths = [ROOT / p for p in out.split("\0") if p]
    except (OSError, subprocess.SubprocessError):
        paths = list(ROOT.rglob("*"))
    return [
        p
        for p in paths
        if (p.suffix in SUFFIXES or p.name in NAMES)
        and p.relative_to(ROOT).parts[0] not in SKIP_TOP
        and not p.relative_to(ROOT).as_posix().startswith(VENDORED)
        and p.is_file()
        and p.resolve() != SELF
    ]


def _lines(paths: list[Path], keywords: tuple[str, ...]) -> Iterator[tuple[str, int, str]]:
    """``(path, line number, line)`` of the lines holding one of the (lower-case) ``keywords``.

    A substring test first: the regular expressions then run on a few hundred lines, not on 1 MB of text.
    """
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        if not any(k in text.lower() for k in keywords):
            continue
        rel = path.relative_to(ROOT).as_posix()
        for number, line in enumerate(text.splitlines(), start=1):
            low = line.lower()
            if any(k in low for k in keywords):
                yield rel, number, line


def _slug(heading: str) -> str:
    """GitHub's anchor of a markdown heading."""
    return re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", heading.strip().lower()))


def _headings(page: Path) -> list[str]:
    return [m.group(1).strip() for m in re.finditer(r"^#{1,6}\s+(.+)$", page.read_text(encoding="utf-8"), re.M)]


def _names(rest: str, heading: str) -> bool:
    """Whether the text after ``docs/<page>.md, `` names ``heading`` (it may wrap before the heading ends)."""
    return rest.startswith(heading) or (heading.startswith(rest.rstrip()) and len(rest.rstrip()) >= 4)


@pytest.fixture(scope="module")
def files() -> list[Path]:
    found = _tracked_files()
    assert any(p.name == "README.md" for p in found), "the scan found no README.md: wrong root?"
    return found


def test_no_citation_of_documents_outside_the_repository(files: list[Path]) -> None:
    hits = [f"{rel}:{n}: {line.strip()}" for rel, n, line in _lines(files, FORBIDDEN_KEYS) if FORBIDDEN.search(line)]
    assert not hits, "cite the paper or docs/ instead of documents not in the repository:\n" + "\n".join(hits)


def test_docs_citations_name_existing_pages_and_headings(files: list[Path]) -> None:
    docs = ROOT / "docs"
    pages = {p.name: _headings(p) for p in docs.glob("*.md")}
    problems = []
    for rel, n, line in _lines(files, DOC_KEYS):
        cites = [(m.group(1), m.group(2), m.group(3)) for m in DOC_CITATION.finditer(line)]
        if rel.startswith("docs/"):
            cites += [(m.group(1), m.group(2), None) for m in DOC_LINK.finditer(line)]
        for page, anchor, rest in cites:
            if page not in pages:
                problems.append(f"{rel}:{n}: docs/{page} does not exist")
            elif anchor is not None and anchor not in {_slug(h) for h in pages[page]}:
                problems.append(f"{rel}:{n}: docs/{page} has no heading with anchor #{anchor}")
            elif rest and rest[:1].isupper() and not any(_names(rest, h) for h in pages[page]):
                problems.append(f"{rel}:{n}: docs/{page} has no heading that starts {rest[:40]!r}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    "line",
    [
        "(spec section 4.1)",
        "spec 7.2 definition",
        "spec 10 #9",
        "(paper Sec. III, spec Appendix A)",
        "the spec's hand counts",
        "Spec table 3.2 with L = 9",
        "as the spec needs",
        "(metrics.md; spec section 10, item 13)",
        'architecture.md "Weights"',
        'stack.md "PostgreSQL"',
        "style 4.5",
        "every value of glcf_spec.md",
        "smoothed with a Gaussian (spec",
    ],
)
def test_pattern_catches_outside_citations(line: str) -> None:
    assert FORBIDDEN.search(line)
    assert any(k in line.lower() for k in FORBIDDEN_KEYS)  # the scan's substring filter keeps the line


@pytest.mark.parametrize(
    "line",
    [
        "spec = PEERS[parse_peers([name])[0]]",
        "for mask, spec in defects:",
        'doc["spec"]["template"]["spec"]',
        "spec:",
        "def build_model(spec: PeerSpec, backbone: str) -> Any:",
        "(vendored in infra/compose-spec/)",
        "the Compose Specification JSON schema",
        "paper eq. (5)-(7); docs/model.md, Anomaly maps",
        "metrics.json and per_image.csv",
    ],
)
def test_pattern_spares_other_uses_of_spec(line: str) -> None:
    assert not FORBIDDEN.search(line)
