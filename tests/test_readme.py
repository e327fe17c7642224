"""The README as a newcomer's map: every section that the code, `.env.example`, the Makefile or
the manifest sends a reader to exists as a heading, and every `make` command it shows is a
Makefile target. Error messages and comments point at sections by name (`README.md, "Set up
the Slack app"`), so a renamed or deleted heading would strand whoever follows them.
"""
from __future__ import annotations

import re

from tests.support import ROOT

README = ROOT / "README.md"
# Where the project names README sections: its code, and the files a newcomer reads first.
SOURCES = [*sorted((ROOT / "bot").rglob("*.py")), *sorted((ROOT / "explain_core").rglob("*.py")),
           *sorted((ROOT / "scripts").rglob("*.py")),
           ROOT / ".env.example", ROOT / "Makefile", ROOT / "manifest.json", ROOT / "Procfile"]
# README.md, "Set up the Slack app" · README 'Set up the Slack app' · README section "The model"
REFERENCE = re.compile(r"README(?:\.md)?(?:,| section)?\s*[\"'“‘]([^\"'”’\n]+)[\"'”’]")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")
MAKE_COMMAND = re.compile(r"(?:^|`)make ([a-z][\w-]*)", re.M)
MAKE_TARGET = re.compile(r"^([A-Za-z][\w-]*)\s*:(?!=)", re.M)


def named_sections() -> dict[str, list[str]]:
    """Each README section named somewhere in SOURCES, with the files that name it."""
    names: dict[str, list[str]] = {}
    for path in SOURCES:
        if path.exists():
            for name in REFERENCE.findall(path.read_text(encoding="utf-8")):
                names.setdefault(name.strip(), []).append(str(path.relative_to(ROOT)))
    return names


def headings(markdown: str) -> set[str]:
    """The text of every heading, code blocks excluded (a `# comment` in a shell block is not one)."""
    found, in_code = set(), False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
        elif not in_code and (match := HEADING.match(line)):
            found.add(match.group(1))
    return found


def missing_sections(markdown: str, names: dict[str, list[str]]) -> list[str]:
    present = headings(markdown)
    return [f"{name!r} (named in {', '.join(where)})" for name, where in sorted(names.items()) if name not in present]


def test_every_section_that_the_project_names_is_a_heading_of_the_readme():
    names = named_sections()
    # The scan sees the references known to exist (so an empty scan cannot pass).
    assert ".env.example" in names.get("Set up the Slack app", [])
    assert "bot/settings.py" in names.get("Set up the Slack app", [])
    assert missing_sections(README.read_text(encoding="utf-8"), names) == []


def test_a_section_that_is_gone_is_reported_with_who_names_it():
    renamed = README.read_text(encoding="utf-8").replace("## Set up the Slack app", "## Slack")
    assert missing_sections(renamed, {"Set up the Slack app": [".env.example"]}) == [
        "'Set up the Slack app' (named in .env.example)"]
    assert "Set up the Slack app" not in headings("```sh\n# Set up the Slack app\n```\n")


def test_the_make_commands_of_the_readme_are_makefile_targets():
    commands = set(MAKE_COMMAND.findall(README.read_text(encoding="utf-8")))
    assert {"demo", "test", "run"} <= commands
    targets = set(MAKE_TARGET.findall((ROOT / "Makefile").read_text(encoding="utf-8")))
    assert commands <= targets, f"not in the Makefile: {sorted(commands - targets)}"
