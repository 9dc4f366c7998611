"""The stubs (engine/_core.pyi, engine/_gjson.pyi) and py.typed let mypy check users'
code against the compiled modules."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_stubs_type_check_a_program_using_the_api():
    pytest.importorskip("mypy")
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--ignore-missing-imports", "--no-error-summary",
         "engine/_core.pyi", "engine/_gjson.pyi", "tests/typing/uses_engine.py"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr


def test_stubs_catch_a_type_error(tmp_path):
    pytest.importorskip("mypy")
    bad = tmp_path / "bad.py"
    bad.write_text("from engine import _core\nx: str = _core.router_rng_below(3)\n")
    out = subprocess.run([sys.executable, "-m", "mypy", "--ignore-missing-imports", str(bad)],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1 and "Incompatible types in assignment" in out.stdout


def test_the_typing_sample_runs():
    out = subprocess.run([sys.executable, "tests/typing/uses_engine.py"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
