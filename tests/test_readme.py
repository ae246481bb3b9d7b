"""Every command the README and the pages of docs/ tell people to run is installed by the README's own install step
(`pip install -r requirements.txt`): each program they name is on PATH and starts, each `python -m` module imports,
each script exists; and the README stays short, with the measurements in docs/."""
import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
DOCS = sorted((ROOT / "docs").glob("*.md"))
TEXTS = [README] + [page.read_text() for page in DOCS]
PROGRAMS = {"python", "python3", "pip", "jupyter", "papermill", "torchrun", "facegan", "nbgrader"}


def readme_commands(text: str = README) -> list[list[str]]:
    """The command lines in a page's bash blocks and inline code, split at && and |, each as its words with
    leading VAR=value assignments dropped; only those that start with a program a user runs."""
    blocks = [body for language, body in re.findall(r"```(\w*)\n(.*?)```", text, re.S)
              if language in ("bash", "sh", "")]
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    lines = [line for block in blocks for line in block.splitlines()] + re.findall(r"`([^`\n]+)`", prose)
    commands = []
    for line in lines:
        for part in re.split(r"&&|\|", line.split(" #")[0]):
            words = [w for w in part.split() if w != "\\"]
            while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words[0]):
                words = words[1:]
            if words and words[0] in PROGRAMS:
                commands.append(words)
    return commands


COMMANDS = [words for text in TEXTS for words in readme_commands(text)]


def test_the_readme_is_short_and_links_every_docs_page():
    assert len(README.encode()) <= 12 * 1024, "the README is for newcomers: measurements and guides go to docs/"
    assert {"speed.md", "quality.md", "grading.md", "distributed.md", "reliability.md"} <= {p.name for p in DOCS}
    for page in DOCS:
        assert f"](docs/{page.name})" in README, f"the README does not link docs/{page.name}"


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.name)
def test_each_docs_page_ends_with_the_commands_that_reproduce_it(page):
    text = page.read_text()
    tail = text[text.rindex("\n## "):]
    assert tail.startswith("\n## Reproduce") or page.name == "contributing.md", \
        f"{page.name} must end with a '## Reproduce' section"
    assert page.name == "contributing.md" or readme_commands(tail), f"{page.name}'s Reproduce section has no command"


def test_every_image_and_page_the_docs_link_exists():
    for page in [ROOT / "README.md", *DOCS]:
        for target in re.findall(r"\]\(([^)#]+?)\)", page.read_text()):
            if not target.startswith("http"):
                assert (page.parent / target).exists(), f"{page.name} links a missing {target}"


def test_the_readme_names_its_ways_in():
    named = {" ".join(words[:2]) for words in COMMANDS}
    for expected in ("jupyter lab", "jupyter notebook", "jupyter nbconvert", "python -m", "pip install"):
        assert any(n.startswith(expected) for n in named), expected


@pytest.mark.slow
@pytest.mark.parametrize("subcommand", sorted({w[1] for w in COMMANDS if w[0] == "jupyter" and len(w) > 1}))
def test_each_jupyter_command_the_readme_names_is_installed_and_starts(subcommand):
    assert shutil.which(f"jupyter-{subcommand}"), f"`jupyter {subcommand}` is in the README but not installed " \
                                                  "by requirements.txt"
    done = subprocess.run(["jupyter", subcommand, "--version"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("program", sorted({w[0] for w in COMMANDS} - {"facegan", "python", "python3"}))
def test_each_program_the_readme_names_is_on_path(program):
    assert shutil.which(program), f"`{program}` is in the README but not installed by requirements.txt"


@pytest.mark.parametrize("module", sorted({w[2] for w in COMMANDS if w[0].startswith("python") and len(w) > 2
                                           and w[1] == "-m"}))
def test_each_python_module_the_readme_runs_imports(module):
    assert importlib.util.find_spec(module) is not None, f"`python -m {module}` is in the README"


def test_the_facegan_command_comes_with_the_package():
    """`facegan` is only there after `pip install -e .`, as the README says: the package must declare it."""
    if any(w[0] == "facegan" for w in COMMANDS):
        assert "pip install -e ." in README
    assert re.search(r'^\[project\.scripts\]\nfacegan = "facegan\.cli:main"$', (ROOT / "pyproject.toml").read_text(),
                     re.M)


def retired_scripts(text: str) -> set[str]:
    """The concluded studies a page's "Retired studies" note names (their code is in git history, not the tree)."""
    note = re.search(r"\*Retired studies\.\*(.*?)\n\n", text, re.S)
    return set(re.findall(r"`(bench/[\w/]+(?:\.py)?)`", note.group(1))) if note else set()


@pytest.mark.parametrize("script", sorted({w[1] for w in COMMANDS if w[0].startswith("python") and len(w) > 1
                                           and w[1].endswith(".py")}))
def test_each_script_the_readme_runs_exists(script):
    """A script a page runs is in the tree, unless that page says it is a retired study (bench/studies/ names a
    folder of them)."""
    pages = [text for text in TEXTS if any(w[1] == script for w in readme_commands(text) if len(w) > 1)]
    retired = [page for page in pages
               if any(script == r or script.startswith(r.rstrip("/") + "/") for r in retired_scripts(page))]
    assert (ROOT / script).is_file() or len(retired) == len(pages), script
