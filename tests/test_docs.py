"""The README is a front door and the docs a site whose links hold: size, the two commands, links, commands."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """The anchor mkdocs (toc) and GitHub give a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\s-]", "", text)
    return re.sub(r"\s+", "-", text).strip("-")


def anchors(page: Path) -> set[str]:
    body = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return {slug(h) for h in re.findall(r"^#{1,6} (.+)$", body, flags=re.M)}


def test_readme_is_a_front_door_of_at_most_16_kb_with_the_two_commands_first():
    text = (ROOT / "README.md").read_text()
    assert len(text.encode()) <= 16 * 1024
    first_screen = "\n".join(text.splitlines()[:15])
    assert "make demo" in first_screen and "make test" in first_screen
    assert not re.search(r"\bissues? \d+", text)  # no issue numbers in the product


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    body = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    for match in LINK.finditer(body):
        target = match.group(1) or match.group(2)
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto: not checked offline
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        assert resolved.exists(), f"{page.name}: {target} does not exist"
        if anchor and resolved.suffix == ".md":
            assert anchor in anchors(resolved), f"{page.name}: no heading #{anchor} in {resolved.name}"


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    found = []
    for line in "\n".join(blocks).splitlines():
        for module in re.findall(r"python -m ([\w.]+)", line):
            found.append(f"module {module}")
        target = re.match(r"\s*make (\w+)", line)
        if target:
            found.append(f"make {target.group(1)}")
    return sorted(set(found))


@pytest.mark.parametrize("command", readme_commands())
def test_every_readme_command_is_a_real_module_or_make_target(command):
    kind, name = command.split(" ", 1)
    if kind == "make":
        assert re.search(rf"^{name}:", (ROOT / "Makefile").read_text(), flags=re.M), command
        return
    out = subprocess.run([sys.executable, "-m", name, "--help"], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and "usage:" in out.stdout, out.stderr[-500:]


def test_the_link_check_finds_a_missing_page_and_a_missing_anchor(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n## A section\n")
    assert slug("## Production: the `tensorflow/serving` image"[3:]) == "production-the-tensorflowserving-image"
    assert anchors(page) == {"title", "a-section"}
    assert [m.group(1) for m in LINK.finditer("see [x](missing.md#nope) and ![i](a.png)")] == ["missing.md#nope", None]
