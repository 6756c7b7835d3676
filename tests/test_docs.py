"""The documentation: README.md opens with the two commands, docs/configuration.md documents every
setting the code reads, and every relative link in README.md and docs/ leads somewhere."""

from __future__ import annotations

import re
from pathlib import Path

from vru.config import ENV_VARS, REPO_ROOT

README = REPO_ROOT / "README.md"
DOCS = REPO_ROOT / "docs"
CONFIGURATION = DOCS / "configuration.md"
PAGES = [README, *sorted(DOCS.glob("*.md"))]

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
CODE_BLOCK = re.compile(r"^```.*?^```", re.M | re.S)


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, -1 on repeats."""
    seen: dict[str, int] = {}
    found = set()
    for line in CODE_BLOCK.sub("", page.read_text()).splitlines():
        heading = re.match(r"^#{1,6}\s+(.*?)\s*$", line)
        if not heading:
            continue
        slug = re.sub(r"[^\w\- ]", "", heading.group(1).lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        found.add(slug if n == 0 else f"{slug}-{n}")
    return found


def test_readme_opens_with_the_two_commands() -> None:
    lines = README.read_text().splitlines()
    assert lines[0].startswith("# "), "README.md: the title first"
    block = lines[lines.index("```sh") + 1:]
    assert lines.index("```sh") <= 3, "README.md: the commands come straight after the title"
    assert [line.split("#")[0].strip() for line in block[:3]] == ["make run", "make test", "```"], (
        "README.md must open with exactly the two commands `make run` and `make test`"
    )


def test_every_setting_is_in_the_configuration_reference() -> None:
    rows = [line for line in CONFIGURATION.read_text().splitlines() if line.startswith("| `")]
    documented = {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split(" | ")[0])}
    missing = sorted(set(ENV_VARS) - documented)
    assert not missing, f"docs/configuration.md: no row for {missing} (vru.config.ENV_VARS reads them)"
    unknown = sorted(name for name in documented - set(ENV_VARS) if name.startswith("VRU_"))
    assert not unknown, f"docs/configuration.md documents {unknown}, which vru.config.ENV_VARS does not read"


def test_relative_links_lead_to_a_file_and_a_heading() -> None:
    broken = []
    for page in PAGES:
        for target in LINK.findall(CODE_BLOCK.sub("", page.read_text())):
            if re.match(r"^[a-z]+:", target):
                continue  # http(s), mailto: not checked here
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists():
                broken.append(f"{page.relative_to(REPO_ROOT)}: {target} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                broken.append(f"{page.relative_to(REPO_ROOT)}: {target} (no such heading)")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_the_readme_links_every_page_of_docs() -> None:
    text = README.read_text()
    unlinked = [page.name for page in PAGES[1:] if f"(docs/{page.name}" not in text]
    assert not unlinked, f"README.md does not link {unlinked}"
