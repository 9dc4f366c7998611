"""The README's example runs and prints what it says."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_example(capsys, monkeypatch):
    src = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", src, re.S).group(1)
    monkeypatch.chdir(ROOT)
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out.strip()
    expected = re.search(r"^# (200 .*)$", code, re.M).group(1)
    assert printed == expected


def test_readme_starts_with_the_two_commands():
    lines = (ROOT / "README.md").read_text().splitlines()
    block = lines[lines.index("```") + 1:lines.index("```") + 3]
    assert [l.split()[:2] for l in block] == [["make", "run"], ["make", "test"]]
