"""Every numbered lesson in tutorials/ runs to the end (each asserts what it teaches)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import HF_CACHE, ROOT

LESSONS = sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.py"))
ARGS = {"02_fine_tune_a_classifier.py": ["--steps", "30"]}


def test_lessons_are_numbered_in_order():
    numbers = [int(p.name[:2]) for p in LESSONS]
    assert numbers == list(range(1, len(LESSONS) + 1))


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.name)
def test_lesson_runs(lesson: Path):
    if not HF_CACHE.is_dir():
        pytest.skip(f"the lessons use all-MiniLM-L6-v2 from {HF_CACHE}, which is absent")
    env = {**os.environ, "HF_HUB_CACHE": str(HF_CACHE), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, str(lesson), *ARGS.get(lesson.name, [])], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
