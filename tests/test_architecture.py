"""The shape of the code, checked: the run's state in one place and no module reaching into the Trainer, modules
and classes small enough to read at once."""
import ast
import sys
from pathlib import Path

import facegan.train as train_module
from facegan.train import Trainer

from test_train import small

ROOT = Path(__file__).resolve().parents[1]


def test_during_a_run_nothing_outside_train_py_touches_the_trainer(tmp_path, monkeypatch):
    """The update rule, the checkpoint code and the loop's side jobs get what they work on, not the Trainer: a whole
    run (with evaluation off, resume and the default step's optional paths on) makes no attribute access to a
    Trainer from any other facegan module. (Before the refactor such a run made 164, from step, monitor and
    resume.)"""
    touched = []
    get, set_ = Trainer.__getattribute__, Trainer.__setattr__

    def outside(depth=2):
        module = sys._getframe(depth).f_globals.get("__name__", "")
        return module if module.startswith("facegan") and module != train_module.__name__ else None

    def reading(self, name):
        if outside():
            touched.append((outside(), name))
        return get(self, name)

    def writing(self, name, value):
        if outside():
            touched.append((outside(), name + "="))
        set_(self, name, value)
    config = small(tmp_path, epochs=2, d_steps=2, r1_gamma=0.1, r1_every=2, augment="translation", lr_decay=0.5)
    Trainer(config, progress=False).run()
    monkeypatch.setattr(Trainer, "__getattribute__", reading)
    monkeypatch.setattr(Trainer, "__setattr__", writing)
    trainer = Trainer(small(tmp_path, epochs=3, d_steps=2, r1_gamma=0.1, r1_every=2, augment="translation",
                            lr_decay=0.5), progress=False)
    trainer.resume()
    trainer.run()
    assert touched == []


def sizes(path: Path) -> tuple[int, list[tuple[str, int]]]:
    source = path.read_text()
    classes = [(node.name, node.end_lineno - node.lineno + 1) for node in ast.walk(ast.parse(source))
               if isinstance(node, ast.ClassDef)]
    return source.count("\n"), classes


def test_modules_and_classes_read_at_once():
    """No module over 300 lines, no class over 200, in the package, the bench tools and the notebook's helpers."""
    paths = [*ROOT.glob("facegan/**/*.py"), *ROOT.glob("bench/*.py"), ROOT / "helpers.py",
             ROOT / "problem_unittests.py"]
    assert len(paths) > 30
    for path in paths:
        lines, classes = sizes(path)
        assert lines <= 300, f"{path.relative_to(ROOT)} has {lines} lines"
        for name, length in classes:
            assert length <= 200, f"{name} in {path.relative_to(ROOT)} has {length} lines"
