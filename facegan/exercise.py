"""The learner's edition of the notebook: the same notebook nbgrader's ``generate_assignment`` releases.

The solved notebook is an nbgrader source notebook: answers sit between nbgrader's begin/end solution marker lines
inside answer cells, graders in locked, graded test cells, the rest in read-only cells. Where nbgrader is
installed (``requirements.txt`` brings it), ``make_exercise`` runs nbgrader's own release preprocessors (lock the
cells, clear the solutions and outputs, checksums), less the ones that need a course database, so the edition is
nbgrader's release version cell for cell (``tests/test_nbgrader.py`` compares them). Without nbgrader, the same
edition is made here with the standard library: every marked region of a code cell becomes ``# YOUR CODE HERE`` and
``raise NotImplementedError()`` at the region's indentation, of a markdown cell ``YOUR ANSWER HERE``, outputs are
cleared and locked cells are marked undeletable and uneditable; only nbgrader's checksums are missing.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from .errors import ExerciseError

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
CODE_STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
ANSWER_STUB = "YOUR ANSWER HERE"
_MARKER = re.compile(r"^(\s*)(### (?:BEGIN|END) SOLUTION)\s*$")


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def regions(text: str, where: str = "a cell") -> list[tuple[int, int, str]]:
    """The solution regions of one cell's text: (first line, last line, indentation) of each BEGIN..END pair,
    line numbers 0-based and inclusive of both markers."""
    found, start = [], None
    for number, line in enumerate(text.split("\n")):
        match = _MARKER.match(line)
        if not match:
            continue
        indent, marker = match.groups()
        if marker == BEGIN:
            if start is not None:
                raise ExerciseError(f"{where}, line {number + 1}: a second '{BEGIN}' before '{END}'")
            start = (number, indent)
        else:
            if start is None:
                raise ExerciseError(f"{where}, line {number + 1}: '{END}' without a '{BEGIN}'")
            found.append((start[0], number, start[1]))
            start = None
    if start is not None:
        raise ExerciseError(f"{where}, line {start[0] + 1}: '{BEGIN}' is never closed by '{END}'")
    return found


def _replace_regions(text: str, where: str, stub) -> str:
    lines = text.split("\n")
    for first, last, indent in reversed(regions(text, where)):
        lines[first:last + 1] = stub(indent)
    return "\n".join(lines)


def solutions(notebook: dict) -> list[str]:
    """The text inside every solution region, in notebook order (what an exercise's stubs stand for)."""
    answers = []
    for index, cell in enumerate(notebook["cells"]):
        text = _source(cell)
        lines = text.split("\n")
        answers += ["\n".join(lines[first + 1:last]) for first, last, _ in regions(text, f"cell {index}")]
    return answers


def _cleared(cell: dict, source: str) -> dict:
    cell = {**cell, "source": source}
    if cell.get("cell_type") == "code":
        cell["outputs"], cell["execution_count"] = [], None
    return cell


def make_exercise(notebook: dict) -> dict:
    """The learner's edition of a solved notebook (a dict in nbformat 4). Raises ExerciseError for markers that
    don't pair up, or a notebook without any."""
    count = sum(len(regions(_source(cell), f"cell {index}")) for index, cell in enumerate(notebook.get("cells", [])))
    if not count:
        raise ExerciseError(f"no '{BEGIN}' ... '{END}' regions found: is this the solved notebook?")
    marked = any("nbgrader" in cell.get("metadata", {}) for cell in notebook.get("cells", []))
    try:  # nbgrader itself refuses marked regions in cells without its metadata; this module handles those
        return _nbgrader_release(notebook) if marked else _plain_release(notebook)
    except ImportError:
        return _plain_release(notebook)


def _nbgrader_release(notebook: dict) -> dict:
    import nbformat
    from nbgrader import preprocessors as nbg
    nb = nbformat.reads(json.dumps(notebook), as_version=4)
    # generate_assignment's own order, less IncludeHeaderFooter/InstantiateTests (unused) and SaveCells (the db)
    for step in (nbg.LockCells, nbg.ClearSolutions, nbg.ClearOutput, nbg.CheckCellMetadata, nbg.ComputeChecksums,
                 nbg.ClearHiddenTests, nbg.ClearMarkScheme, nbg.ComputeChecksums, nbg.CheckCellMetadata):
        try:
            nb, _ = step().preprocess(nb, {})
        except Exception as e:  # noqa: BLE001 - nbgrader raises plain errors for a notebook it refuses
            raise ExerciseError(f"nbgrader refuses this notebook ({str(e).splitlines()[0]}): fix its nbgrader "
                                "cell metadata, or check it with `nbgrader validate`") from None
    return json.loads(json.dumps(nb))  # a plain dict, each cell's source one string as in _plain_release


def _plain_release(notebook: dict) -> dict:
    cells = []
    for index, cell in enumerate(notebook.get("cells", [])):
        text, where = _source(cell), f"cell {index}"
        if cell.get("cell_type") == "markdown":
            text = _replace_regions(text, where, lambda indent: [indent + ANSWER_STUB])
        elif cell.get("cell_type") == "code":
            text = _replace_regions(text, where, lambda indent: [indent + line for line in CODE_STUB])
        cell = _cleared(cell, text)
        # as nbgrader's LockCells: no graded, answer or read-only cell can be deleted; read-only and test cells
        # can't be edited either
        grading = cell.get("metadata", {}).get("nbgrader", {})
        if any(grading.get(flag) for flag in ("solution", "grade", "locked")):
            cell["metadata"] = {**cell["metadata"], "deletable": False}
        if grading.get("locked") or (grading.get("grade") and not grading.get("solution")):
            cell["metadata"]["editable"] = False
        cells.append(cell)
    return {**notebook, "cells": cells}


def fill(exercise: dict, answers: list[str]) -> dict:
    """An exercise with its stubs replaced by ``answers`` in order (e.g. ``solutions`` of the solved notebook),
    each answer's markers restored, so the result grades like the solved notebook."""
    answers = list(answers)
    stubs = {"code": "\n".join(CODE_STUB), "markdown": ANSWER_STUB}
    cells = []
    for cell in exercise["cells"]:
        text, kind = _source(cell), cell.get("cell_type")
        if kind in stubs:
            lines, out, i = text.split("\n"), [], 0
            width = len(stubs[kind].split("\n"))
            while i < len(lines):
                block = [line.strip() for line in lines[i:i + width]]
                if block == stubs[kind].split("\n") and answers:
                    indent = lines[i][:len(lines[i]) - len(lines[i].lstrip())]
                    out += [indent + BEGIN, *answers.pop(0).split("\n"), indent + END]
                    i += width
                else:
                    out.append(lines[i])
                    i += 1
            text = "\n".join(out)
        cells.append({**cell, "source": text})
    if answers:
        raise ExerciseError(f"{len(answers)} answers left over: the exercise has fewer stubs than answers")
    return {**exercise, "cells": cells}


def read_notebook(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ExerciseError(f"notebook '{path}' not found: run this in the project folder, or pass --notebook "
                            "with the path of dlnd_face_generation.ipynb")
    try:
        notebook = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ExerciseError(f"'{path}' is not a readable notebook ({e}): pass the solved .ipynb file") from None
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        raise ExerciseError(f"'{path}' is not a Jupyter notebook (no cells): pass the solved .ipynb file")
    return notebook


def write_notebook(notebook: dict, path: str | os.PathLike) -> None:
    from .atomic import atomic_write
    text = json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"
    atomic_write(Path(path), lambda f: f.write(text.encode("utf-8")))


def write_exercise(solved: str | os.PathLike, out: str | os.PathLike) -> int:
    """Write the learner's edition of ``solved`` to ``out``; returns the number of stubs."""
    if Path(out).resolve() == Path(solved).resolve():
        raise ExerciseError(f"'{out}' is the solved notebook itself: write the exercise to another file")
    notebook = read_notebook(solved)
    exercise = make_exercise(notebook)
    write_notebook(exercise, out)
    return len(solutions(notebook))
