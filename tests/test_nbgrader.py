"""The instructor's cycle with the real nbgrader, offline, in a course folder of its own: generate the student
edition, autograde three submissions (solved: full marks for code; a generator without tanh: exactly that cell's
points lost; the blank release: 0 for code, no crash), and write the feedback."""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from facegan.exercise import _plain_release, make_exercise

pytest.importorskip("nbgrader")
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "dlnd_face_generation.ipynb"
# the notebook's training kept small under autograde: synthetic faces, one short epoch, no FID
SMALL = {"FACEGAN_DATA_DIR": "synthetic", "FACEGAN_N_EPOCHS": "1", "FACEGAN_BATCH_SIZE": "128", "FACEGAN_FID_N": "0"}


def nbgrader(course, *args, env=None):
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, capture_output=True, text=True,
                          timeout=900, env={**os.environ, **(env or {})})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    course = tmp_path_factory.mktemp("course")
    source = course / "source" / "face_generation"
    source.mkdir(parents=True)
    for name in (NOTEBOOK, "problem_unittests.py", "helpers.py"):
        shutil.copy(ROOT / name, source / name)
    (course / "nbgrader_config.py").write_text(
        'c = get_config()\nc.CourseDirectory.course_id = "facegan"\n'
        'c.CourseDirectory.db_url = "sqlite:///gradebook.db"\nc.ExecutePreprocessor.timeout = 900\n')
    nbgrader(course, "generate_assignment", "face_generation", "--force")
    return course


def read(path):
    return json.loads(Path(path).read_text())


def test_the_release_is_the_exercise_edition_cell_for_cell(course):
    import nbformat
    release = read(course / "release" / "face_generation" / NOTEBOOK)
    solved = read(ROOT / NOTEBOOK)
    # as notebooks: nbformat reads a cell's source the same whether the file splits it into lines or not
    assert nbformat.from_dict(make_exercise(solved)) == \
        nbformat.read(course / "release" / "face_generation" / NOTEBOOK, as_version=4), \
        "`facegan exercise` and nbgrader give different student editions"
    text = json.dumps(release)
    assert "BEGIN SOLUTION" not in text and "# YOUR CODE HERE" in text and "YOUR ANSWER HERE" in text

    def without_checksums(notebook):  # what the fallback without nbgrader cannot compute
        cells = json.loads(json.dumps(notebook["cells"]))
        for cell in cells:
            cell["source"] = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            for key in ("checksum", "cell_type"):
                cell["metadata"].get("nbgrader", {}).pop(key, None)
        return cells
    assert without_checksums(_plain_release(solved)) == without_checksums(release)


def submit(course, student, notebook):
    folder = course / "submitted" / student / "face_generation"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / NOTEBOOK).write_text(json.dumps(notebook))


def test_autograde_scores_solved_buggy_and_blank_submissions_and_writes_feedback(course, tmp_path):
    from nbgrader.api import Gradebook
    solved = read(ROOT / NOTEBOOK)
    submit(course, "solved", solved)
    buggy = json.loads(json.dumps(solved))
    generator = next(c for c in buggy["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == "generator")
    source = "".join(generator["source"])
    assert "return torch.tanh(self.deconv4(x))" in source
    generator["source"] = source.replace("return torch.tanh(self.deconv4(x))", "return self.deconv4(x)")
    submit(course, "buggy", buggy)
    submit(course, "blank", read(course / "release" / "face_generation" / NOTEBOOK))

    env = {**SMALL, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg", "FACEGAN_CACHE": str(tmp_path / "cache")}
    seconds = {}
    for student in ("solved", "buggy", "blank"):
        start = time.perf_counter()
        nbgrader(course, "autograde", "face_generation", "--student", student, "--force", env=env)
        seconds[student] = time.perf_counter() - start
    print(f"autograde seconds: {seconds}")

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        def lost(student):
            notebook = gradebook.find_submission("face_generation", student).notebooks[0]
            code = [g for g in notebook.grades if g.cell_type == "code"]
            return ({g.name for g in code if g.score < g.max_score}, sum(g.score for g in code),
                    sum(g.max_score for g in code))
        code_points = lost("solved")[2]
        assert code_points == 15
        assert lost("solved") == (set(), 15, 15), "the solved notebook must get full marks for code"
        assert lost("buggy") == ({"test_generator"}, 13, 15), "one bug, that cell's 2 points, nothing else"
        assert lost("blank")[1] == 0
        manual = [g for g in gradebook.find_submission("face_generation", "solved").notebooks[0].grades
                  if g.cell_type == "markdown"]
        assert [(g.name, g.max_score, g.needs_manual_grade) for g in manual] == [("reflection", 3, True)]

    nbgrader(course, "generate_feedback", "face_generation")
    for student in ("solved", "buggy", "blank"):
        html = (course / "feedback" / student / "face_generation" / NOTEBOOK.replace(".ipynb", ".html")).read_text()
        assert "face_generation" in html and "Score" in html
    assert "end the generator with torch.tanh" in \
        (course / "feedback" / "buggy" / "face_generation" / "dlnd_face_generation.html").read_text()
