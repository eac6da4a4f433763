"""Exercises cut from the real code: the marked lines of a function, its skeleton, its solution.

minillm's own functions carry two comment lines around the part a learner writes:

    def rmsnorm_backward(dy, cache):
        \"\"\"dx (..., C), dw (C,) of y = x * rstd * w.\"\"\"
        x2, w, rstd = cache
        ...
        # exercise: rmsnorm_backward
        C = x2.shape[1]                     <- the learner writes these lines
        ...
        # end exercise

The skeleton is the function with the marked lines replaced by `raise NotImplementedError`
(and, above it, the shapes of the arrays the removed lines made, read from their shape
comments); the solution is the function with them. Both leave out the C fast path (an
`if K.fast(...):` block that calls nn/kernels/): an exercise is the NumPy version. The
imports a file needs are the module-level names the solution uses. A method (Tokenizer.
_encode_chunk) becomes a plain function of `self`.

Read next: registry.py (which functions), workspace.py (start and check).
"""
import ast
import re
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import minillm

BEGIN = re.compile(r"^(\s*)# exercise: (\w+)\s*$")
END = re.compile(r"^(\s*)# end exercise\s*$")
KERNEL_MODULES = ("minillm.nn.kernels", "minillm.clib")
SHAPE_COMMENT = re.compile(r"^\s*([A-Za-z_][\w, ]*?)\s*=(?!=)[^#]*#\s*(\(.*\S)\s*$")
RAISE = 'raise NotImplementedError("your code here")'
ROOT = Path(minillm.__file__).resolve().parent.parent


@dataclass
class Cut:
    """One exercised function, cut at its markers (line lists without newlines)."""
    name: str               # the function's name (a method's name without its class)
    owner: str              # the class of a method, else None
    where: str              # "minillm/nn/layers.py:97"
    head: list              # def line .. just before `# exercise:`, C path left out
    body: list              # the marked lines, C path left out
    tail: list              # after `# end exercise` to the function's end
    indent: str             # the marked lines' indentation
    shapes: list            # ["dx: (N, C)", ...] from the marked lines' shape comments
    c_path: bool            # True when a C fast path was left out

    def text(self, solved):
        """The function as a learner's file holds it: written (solved) or to write."""
        if solved:
            middle = self.body
        else:
            notes = [f"{self.indent}# minillm's lines make, in this order:"] if self.shapes else []
            notes += [f"{self.indent}#   {s}" for s in self.shapes]
            middle = notes + [self.indent + RAISE]
        lines = self.head + middle + self.tail
        if self.owner:
            lines = [f"# A method of {self.owner}: `self` is the {self.owner}."] + lines
        return "\n".join(lines) + "\n"


def marked_regions(lines):
    """[(name, begin, end)]: 0-based indices of each `# exercise: NAME` and its `# end exercise`
    (same indentation, nothing nested). ValueError on a marker without its partner."""
    regions, open_ = [], None
    for i, line in enumerate(lines):
        begin, end = BEGIN.match(line), END.match(line)
        if begin:
            if open_:
                raise ValueError(f"line {i + 1}: `# exercise:` inside the exercise opened on "
                                 f"line {open_[1] + 1}")
            open_ = (begin.group(2), i, begin.group(1))
        elif end:
            if not open_ or end.group(1) != open_[2]:
                raise ValueError(f"line {i + 1}: `# end exercise` without a `# exercise:` at its indentation")
            regions.append((open_[0], open_[1], i))
            open_ = None
    if open_:
        raise ValueError(f"line {open_[1] + 1}: `# exercise: {open_[0]}` is never closed")
    return regions


def _find_def(tree, qualname):
    """The FunctionDef node of `qualname` ("f" or "Class.f") in a module's tree."""
    scope = tree
    for part in qualname.split("."):
        for node in scope.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == part:
                scope = node
                break
        else:
            raise ValueError(f"{qualname} not found")
    return scope


def module_bindings(tree, module_name):
    """{name: (module, imported name or None)} for every module-level name of a module:
    `import numpy as np` -> ("numpy", None) under "np"; `from m import a as b` -> ("m", "a")
    under "b"; the module's own functions, classes and constants -> (module_name, name)."""
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Import):
            for a in node.names:
                out[a.asname or a.name.split(".")[0]] = (a.name if a.asname else a.name.split(".")[0], None)
        elif isinstance(node, ast.ImportFrom):
            for a in node.names:
                out[a.asname or a.name] = (node.module, a.name)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            out[node.name] = (module_name, node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                for n in ast.walk(t):
                    if isinstance(n, ast.Name):
                        out[n.id] = (module_name, n.id)
    return out


def _kernel_names(bindings):
    """Names bound to the C kernel modules (K, KL, KA, KO, ...)."""
    names = set()
    for name, (module, attr) in bindings.items():
        full = module if attr is None else f"{module}.{attr}"
        if module.startswith(KERNEL_MODULES) or full.startswith(KERNEL_MODULES):
            names.add(name)
    return names


def _c_path_lines(fn, kernel_names):
    """0-based line indices of the function's top-level `if` blocks (without else) that call
    the C kernels: the fast path an exercise leaves out."""
    out = set()
    for stmt in fn.body:
        if isinstance(stmt, ast.If) and not stmt.orelse and any(
                isinstance(n, ast.Name) and n.id in kernel_names for n in ast.walk(stmt)):
            out.update(range(stmt.lineno - 1, stmt.end_lineno))
    return out


def cut(function, exercise):
    """The Cut of a real function (an object, e.g. layers.rmsnorm_backward) at the markers of
    `exercise`; ValueError when the markers are missing or stray."""
    module = sys.modules[function.__module__]
    path = Path(module.__file__).resolve()
    lines = path.read_text(encoding="utf-8").splitlines()
    tree = ast.parse("\n".join(lines))
    fn = _find_def(tree, function.__qualname__)
    first = min([fn.lineno] + [d.lineno for d in fn.decorator_list]) - 1
    inside = [r for r in marked_regions(lines) if fn.lineno - 1 < r[1] <= fn.end_lineno]
    where = f"{path.relative_to(ROOT)}:{fn.lineno}"
    if [r[0] for r in inside] != [exercise]:
        raise ValueError(f"{where} {function.__qualname__}: expected one `# exercise: {exercise}` "
                         f"block, found {[r[0] for r in inside]}")
    _, begin, end = inside[0]
    last = max(fn.end_lineno - 1, end)
    skip = _c_path_lines(fn, _kernel_names(module_bindings(tree, function.__module__)))
    head, body, tail = ([lines[i] for i in range(a, b) if i not in skip]
                        for a, b in ((first, begin), (begin + 1, end), (end + 1, last + 1)))
    indent = BEGIN.match(lines[begin]).group(1)
    shapes = [f"{m.group(1)}: {m.group(2)}" for m in map(SHAPE_COMMENT.match, body) if m]
    owner = function.__qualname__.split(".")[0] if "." in function.__qualname__ else None
    if owner:                                   # a method: dedent it to module level
        strip = len(lines[fn.lineno - 1]) - len(lines[fn.lineno - 1].lstrip())
        head, body, tail = ([ln[strip:] for ln in part] for part in (head, body, tail))
        indent = indent[strip:]
    c_path = any(first <= i <= last for i in skip)
    return Cut(function.__name__, owner, where, head, body, tail, indent, shapes, c_path)


def imports_for(functions, cuts):
    """The import block a learner's file needs: the module-level names (of each function's
    module) that the solved functions use, minus the functions the file defines itself."""
    own = {c.name for c in cuts}
    plain, named = [], {}
    for function, c in zip(functions, cuts):
        module = sys.modules[function.__module__]
        tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
        bindings = module_bindings(tree, function.__module__)
        used = {n.id for n in ast.walk(ast.parse(c.text(solved=True))) if isinstance(n, ast.Name)}
        for name in sorted(used & set(bindings) - own):
            source, attr = bindings[name]
            if attr is None:
                line = f"import {source}" + (f" as {name}" if name != source else "")
                if line not in plain:
                    plain.append(line)
            else:
                named.setdefault(source, []).append(attr if attr == name else f"{attr} as {name}")
    if "import numpy as np" not in plain:        # every exercise is NumPy: always at hand
        plain.append("import numpy as np")
    groups = [[], [], []]                           # the standard library, others, minillm
    for line in sorted(plain, key=lambda s: s.split()[1]):
        groups[_group(line.split()[1])].append(line)
    for source in sorted(named):
        names = ", ".join(sorted(set(named[source])))
        line = f"from {source} import {names}"
        if len(line) > 95:
            line = textwrap.fill(names, 95, initial_indent=f"from {source} import (",
                                 subsequent_indent="    ") + ")"
        groups[_group(source)].append(line)
    return "\n\n".join("\n".join(g) for g in groups if g)


def _group(module):
    """Import groups as in minillm's files: the standard library, the runtime dependencies
    (numpy, regex, tqdm, cffi), minillm."""
    top = module.split(".")[0]
    return 2 if top == "minillm" else 1 if top in ("numpy", "regex", "tqdm", "cffi") else 0


def shapes_legend(functions):
    """The "Shapes: ..." sentences of the functions' module docstrings, one per module."""
    out = []
    for module_name in dict.fromkeys(f.__module__ for f in functions):
        doc = sys.modules[module_name].__doc__ or ""
        m = re.search(r"Shapes:(.*?)(?:\n\s*\n|$)", doc, flags=re.DOTALL)
        if m:
            out.append("Shapes: " + " ".join(m.group(1).split()))
    return out
