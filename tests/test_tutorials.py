"""Every numbered lesson in tutorials/ runs to the end in its fast mode (each asserts what it teaches), and so does
every worked solution in tutorials/solutions/."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import HF_CACHE, ROOT

LESSONS = sorted((ROOT / "tutorials").glob("[0-9][0-9]_*.py"))
SOLUTIONS = sorted((ROOT / "tutorials" / "solutions").glob("[0-9][0-9]_*.py"))
ARGS = {"05_fine_tune_a_classifier.py": ["--steps", "30"]}


def test_lessons_are_numbered_in_order():
    numbers = [int(p.name[:2]) for p in LESSONS]
    assert numbers == list(range(1, len(LESSONS) + 1)) and len(LESSONS) >= 16  # the course of issue 18


def test_every_solution_belongs_to_a_lesson():
    lessons = {p.name[:2] for p in LESSONS}
    assert SOLUTIONS, "tutorials/solutions/ holds the worked exercises"
    assert {p.name[:2] for p in SOLUTIONS} <= lessons


def run(script: Path):
    if not HF_CACHE.is_dir():
        pytest.skip(f"the lessons use all-MiniLM-L6-v2 from {HF_CACHE}, which is absent")
    env = {**os.environ, "HF_HUB_CACHE": str(HF_CACHE), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(script), *ARGS.get(script.name, [])], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.name)
def test_lesson_runs(lesson: Path):
    run(lesson)


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.name)
def test_solution_runs(solution: Path):
    run(solution)
