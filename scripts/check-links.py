#!/usr/bin/env python3
"""Fails when a relative Markdown link does not resolve.

Checks every `[text](path)`, `[text](path#anchor)`, `[text](#anchor)`,
`![alt](path)` and `[label]: path` in README.md, BENCHMARKS.md, docs/*.md,
helm/README.md, helm/*/README.md and clients/*/README.md: the file or
directory must exist relative to the Markdown file, and an anchor into a
Markdown file must match one of its headings by GitHub's slug rules
(lower case; punctuation and symbols such as `§` removed except `-` and
`_`; each space a `-`; repeated headings get `-1`, `-2`, …). Links with a
scheme (`https:`, `mailto:`, …) and everything inside fenced code blocks
or inline code spans are skipped. Prints each broken link as file:line and
exits 1; prints a one-line summary otherwise."""
import pathlib
import re
import sys
import unicodedata
from urllib.parse import unquote

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGES = ["README.md", "BENCHMARKS.md", "docs/*.md", "helm/README.md", "helm/*/README.md", "clients/*/README.md"]

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$")
SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
INLINE_LINK = re.compile(r"!?\[((?:[^\[\]]|\[[^\[\]]*\])*)\]\(\s*(<[^>]*>|[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)(?:\s+[\"'(].*?[\"')])?\s*\)")
REFERENCE_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
HTML_ANCHOR = re.compile(r"<a\s[^>]*(?:name|id)\s*=\s*[\"']([^\"']+)[\"']", re.I)
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def prose_lines(text: str):
    """(line number, line) of every line outside fenced code blocks."""
    fence = None
    for number, line in enumerate(text.splitlines(), 1):
        m = FENCE.match(line)
        if fence is None:
            if m:
                fence = m.group(1)
                continue
            yield number, line
        elif m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and not line[m.end() :].strip():
            fence = None


def heading_text(raw: str) -> str:
    """The heading as GitHub renders it: links as their text, no code
    backticks, no emphasis stars, no HTML tags."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", raw)
    text = re.sub(r"<[^>]+>", "", text)
    return text.replace("`", "").replace("*", "")


def slug(text: str) -> str:
    """GitHub's anchor for a heading: lower case, every character that is
    not a letter, mark, digit, `-`, `_` or space dropped, spaces to `-`."""
    out = []
    for ch in heading_text(text).strip().lower():
        if ch in "-_":
            out.append(ch)
        elif ch == " ":
            out.append("-")
        elif unicodedata.category(ch)[0] in "LMN":
            out.append(ch)
    return "".join(out)


def anchors(path: pathlib.Path, cache: dict) -> set[str]:
    if path not in cache:
        found, seen = set(), {}
        previous = None
        for _, line in prose_lines(path.read_text(encoding="utf-8")):
            m = HEADING.match(line)
            title = None
            if m:
                title = m.group(2)
            elif previous and previous.strip() and SETEXT.match(line) and not HEADING.match(previous):
                title = previous.strip()
            if title is not None:
                base = slug(title)
                n = seen.get(base, 0)
                seen[base] = n + 1
                found.add(base if n == 0 else f"{base}-{n}")
            for a in HTML_ANCHOR.findall(line):
                found.add(a)
            previous = line
        cache[path] = found
    return cache[path]


def targets(line: str):
    """Link targets in one line of prose, code spans left out."""
    prose = CODE_SPAN.sub(lambda m: " " * len(m.group(0)), line)
    for m in INLINE_LINK.finditer(prose):
        yield m.group(2).strip("<>")
    m = REFERENCE_DEF.match(prose)
    if m:
        yield m.group(1).strip("<>")


def check(page: pathlib.Path, cache: dict) -> tuple[int, list[str]]:
    links, broken = 0, []
    for number, line in prose_lines(page.read_text(encoding="utf-8")):
        for target in targets(line):
            if not target or SCHEME.match(target):
                continue
            links += 1
            where = f"{page.relative_to(ROOT)}:{number}"
            path_part, _, anchor = target.partition("#")
            dest = page if not path_part else (page.parent / unquote(path_part)).resolve()
            if not dest.exists():
                broken.append(f"{where}: {target}: no such file or directory")
                continue
            if anchor and dest.is_file() and dest.suffix.lower() == ".md":
                if unquote(anchor).lower() not in anchors(dest, cache):
                    shown = dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest
                    broken.append(f"{where}: {target}: no heading #{anchor} in {shown}")
    return links, broken


# Code, chart and proto comments cite the architecture page's sections as
# "docs/architecture.md §N"; each N must be a `## §N ...` heading there.
CITING = ("src", "helm", "proto", "clients/rust/proto", "tests")
SECTION_CITE = re.compile(r"docs/architecture\.md §(\d+)(?:, §(\d+))*")


def section_cites() -> tuple[int, list[str]]:
    page = ROOT / "docs" / "architecture.md"
    sections = set(re.findall(r"^## §(\d+)\b", page.read_text(), flags=re.M)) if page.exists() else set()
    count, broken = 0, []
    for root in CITING:
        for path in sorted((ROOT / root).rglob("*")):
            if not path.is_file() or path.suffix not in (".rs", ".lua", ".proto", ".yaml", ".md", ".tpl"):
                continue
            for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                for m in SECTION_CITE.finditer(line):
                    for number in re.findall(r"§(\d+)", m.group(0)):
                        count += 1
                        if number not in sections:
                            rel = path.relative_to(ROOT)
                            broken.append(f"{rel}:{n}: docs/architecture.md has no section §{number}")
    return count, broken


def main() -> int:
    pages = sorted({p for pattern in PAGES for p in ROOT.glob(pattern) if p.is_file()})
    cache: dict = {}
    total, broken = 0, []
    for page in pages:
        links, bad = check(page, cache)
        total += links
        broken += bad
    cites, bad = section_cites()
    broken += bad
    for line in broken:
        print(line, file=sys.stderr)
    if broken:
        print(f"{len(broken)} broken link(s) of {total} in {len(pages)} Markdown files", file=sys.stderr)
        return 1
    print(f"links: {total} relative links in {len(pages)} Markdown files resolve, and {cites} citations of docs/architecture.md sections")
    return 0


if __name__ == "__main__":
    sys.exit(main())
