"""The README's snippets run as written: every name a snippet uses is a builtin or is
defined by it or by a snippet above it (the event snippet continues the first one).
Its links, and those of the other documentation pages, lead to files of the repository.

Static checks, so that they cost nothing; the snippets themselves are run by hand
before a change to the README lands (they solve 100,000 problems).
"""

import ast
import builtins
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
DOCS = [README, REPO / "docs" / "architecture.md", REPO / "benchmarks" / "README.md"]


def _snippets():
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def _defined(tree):
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
            names |= {a.arg for a in ast.walk(node.args) if isinstance(a, ast.arg)}
        elif isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            names.add(node.id)
    return names


def test_every_name_a_snippet_uses_is_defined():
    snippets = _snippets()
    assert len(snippets) >= 5
    known = set(dir(builtins))
    for i, text in enumerate(snippets):
        tree = ast.parse(text)
        known |= _defined(tree)
        used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        assert used <= known, f"README snippet {i + 1} uses {sorted(used - known)} undefined"


def test_documentation_links_stay_inside_the_repository():
    """A relative link resolves to a file of the repository, as it does in a clone."""
    for page in DOCS:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if target.startswith(("#", "http://", "https://")):
                continue
            path = (page.parent / target.split("#")[0]).resolve()
            assert path.is_relative_to(REPO) and path.exists(), f"{page.name} links {target}"
