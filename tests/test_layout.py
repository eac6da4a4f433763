"""The package layout: one package per lecture stage, each importing only from the stages
before it, no import cycles, imports at the top, argparse only in the cli modules, no
dispatch by names built from strings; and in csrc/, no C file leaning on another's
internals. Read with `ast` (and, for C, a small tokenizer): nothing is imported or compiled.

    python -m pytest tests/test_layout.py
"""
import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "minillm"
CSRC = ROOT / "csrc"

# The lecture's order: a package may import itself and the packages before it, never one
# after it. chat, rl and rlhf are the post-training stages (a name here may not exist yet).
ORDER = ["common", "clib", "world", "internet", "crawl", "tokenizer", "nn", "pretrain", "generate",
         "evals", "chat", "rl", "rlhf", "hub", "report", "web", "speedrun", "exercises", "cli", "__main__"]

# Compiled extensions: modules with no .py file, and the stage they belong to.
EXTENSIONS = {"minillm._kernels": "clib"}      # csrc/ compiled by csrc/build.py or setup.py

# Function-level imports of minillm modules that are allowed: {(module, imported module): why}.
# An import inside a function hides a dependency from the reader and from the cycle check;
# the only good reason is an optional path that may be missing or that most runs never take.
FUNCTION_LEVEL_ALLOWED = {
    ("minillm.clib", "minillm._kernels"): "the C extension is optional: loaded on first use, "
                                          "NumPy takes over when it was not built",
    ("minillm.internet.cli", "minillm.pretrain.shards"): "`clean --tokenizer T --shards DIR` hands the "
                                          "clean text to pretraining's shard writer, a later stage; "
                                          "only that flag takes the path",
}

# Modules that may import argparse: each package's cli.py and the top-level minillm/cli.py.
ARGPARSE_ALLOWED_NAME = "cli.py"


# ---- reading minillm/ ---------------------------------------------------------------------

def module_name(path):
    """minillm/nn/gpt.py -> "minillm.nn.gpt"; minillm/nn/__init__.py -> "minillm.nn"."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def discover():
    """{module name: (path, ast tree)} for every .py file under minillm/."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        modules[module_name(path)] = (path, ast.parse(path.read_text(encoding="utf-8"), str(path)))
    return modules


MODULES = discover()


def package_of(module):
    """The stage a module belongs to: "minillm.nn.kernels.matmul" -> "nn", "minillm.cli" -> "cli"."""
    if module in EXTENSIONS:
        return EXTENSIONS[module]
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "minillm"


def imports(module, tree):
    """(imported minillm module, line, at module level?) for each import statement.

    `from minillm.x import y` imports minillm.x.y when that is a module, else minillm.x;
    relative imports are resolved against the module's package. Module level means not
    inside a function (a class body or an `if`/`try` at the top runs at import time too).
    """
    is_package = MODULES[module][0].name == "__init__.py"
    out = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name == "minillm" or alias.name.startswith("minillm."):
                        out.append((alias.name, child.lineno, not in_function))
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = module.split(".")
                    anchor = anchor[:len(anchor) - child.level + (1 if is_package else 0)]
                    base = ".".join(anchor + ([base] if base else []))
                if base == "minillm" or base.startswith("minillm."):
                    targets = {f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES.keys() | EXTENSIONS.keys()
                               else base for a in child.names}
                    out.extend((t, child.lineno, not in_function) for t in sorted(targets))
            visit(child, nested)

    visit(tree, False)
    return out


def module_graph():
    """{module: {imported module: line}}. Imports inside functions count too: a cycle hidden
    in a function still ties the two modules together for the reader (and that import is a
    failure of its own below, unless it is an allowed optional path)."""
    graph = {m: {} for m in MODULES}
    for m, (_, tree) in MODULES.items():
        for target, line, _ in imports(m, tree):
            if target != m:
                graph[m].setdefault(target, line)
    return graph


def cycles(graph):
    """One cycle (a list of modules, first == last) per strongly connected component with
    more than one module (Tarjan's algorithm, iteratively)."""
    index, low, on_stack, stack, comps, counter = {}, {}, set(), [], [], [0]
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        top = stack.pop()
                        on_stack.discard(top)
                        comp.append(top)
                        if top == node:
                            break
                    if len(comp) > 1:
                        comps.append(sorted(comp))
            elif child not in graph:
                continue
            elif child not in index:
                index[child] = low[child] = counter[0]
                counter[0] += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return [_cycle_in(graph, comp) for comp in comps]


def _cycle_in(graph, comp):
    """A shortest path start -> ... -> start inside one strongly connected component."""
    members, start = set(comp), comp[0]
    parent, frontier = {start: None}, [start]
    while frontier:
        nxt = []
        for node in frontier:
            for child in sorted(graph[node]):
                if child == start:
                    path = [node]
                    while parent[path[-1]] is not None:
                        path.append(parent[path[-1]])
                    return [start] + path[::-1][1:] + [start]
                if child in members and child not in parent:
                    parent[child] = node
                    nxt.append(child)
        frontier = nxt
    return comp


# ---- the checks on minillm/ -----------------------------------------------------------------

def test_the_cycle_finder_finds_cycles():
    graph = {"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1, "d": 1}, "d": {}, "e": {"e": 1}}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b": 1}, "b": {}}) == []


def test_no_import_cycles():
    found = cycles(module_graph())
    assert not found, "import cycles:\n" + "\n".join(
        "  " + " -> ".join(c) for c in found)


def test_no_function_level_imports_of_minillm():
    found = []
    for m, (path, tree) in MODULES.items():
        for target, line, top in imports(m, tree):
            if not top and (m, target) not in FUNCTION_LEVEL_ALLOWED:
                found.append(f"  {path.relative_to(ROOT)}:{line} imports {target} inside a function")
    assert not found, ("imports of minillm modules inside functions (move them to the top, or "
                       "document an optional path in FUNCTION_LEVEL_ALLOWED):\n" + "\n".join(found))


def test_the_allow_list_is_current():
    """Every allowed function-level import still exists (a stale entry would hide a new one)."""
    present = {(m, target) for m, (_, tree) in MODULES.items()
               for target, _, top in imports(m, tree) if not top}
    assert set(FUNCTION_LEVEL_ALLOWED) <= present, set(FUNCTION_LEVEL_ALLOWED) - present


def test_packages_import_only_earlier_stages():
    unknown = sorted({package_of(m) for m in MODULES} - set(ORDER) - {"minillm"})
    assert not unknown, f"packages with no place in ORDER: {unknown}; add them in lecture order"
    rank = {p: i for i, p in enumerate(ORDER)}
    rank["minillm"] = -1                        # minillm/__init__.py imports nothing of minillm
    found = []
    for m, (path, tree) in MODULES.items():
        mine = package_of(m)
        for target, line, _ in imports(m, tree):
            theirs = package_of(target)
            if (m, target) in FUNCTION_LEVEL_ALLOWED:   # a documented optional path
                continue
            if theirs != mine and rank.get(theirs, len(ORDER)) > rank[mine]:
                found.append(f"  {path.relative_to(ROOT)}:{line} ({mine}) imports {target} ({theirs})")
    assert not found, ("imports of a later stage (order: " + ", ".join(ORDER) + "):\n"
                       + "\n".join(found))


def test_argparse_only_in_cli_modules():
    found = []
    for m, (path, tree) in MODULES.items():
        if path.name == ARGPARSE_ALLOWED_NAME:
            continue
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) else [])
            if any(n and n.split(".")[0] == "argparse" for n in names):
                found.append(f"  {path.relative_to(ROOT)}:{node.lineno}")
    assert not found, "argparse outside a package's cli.py:\n" + "\n".join(found)


def _built_name(node):
    """True for an expression that builds a string at run time: f"...", "a" + x, "...".format(),
    "..." % x."""
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mod)):
        return any(isinstance(s, ast.Constant) and isinstance(s.value, str) or _built_name(s)
                   for s in (node.left, node.right))
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "format" and isinstance(node.func.value, ast.Constant))


def test_no_dispatch_by_names_built_from_strings():
    found = []
    for m, (path, tree) in MODULES.items():
        for node in ast.walk(tree):
            where = f"  {path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"
            if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Call)
                    and isinstance(node.value.func, ast.Name) and node.value.func.id in ("globals", "locals", "vars")):
                found.append(f"{where}: {node.value.func.id}()[...]")
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                  and node.func.id in ("getattr", "hasattr", "setattr") and len(node.args) >= 2
                  and _built_name(node.args[1])):
                found.append(f"{where}: {node.func.id} with a name built from strings")
    assert not found, "dispatch by names built from strings (use an explicit table):\n" + "\n".join(found)


def test_the_checks_see_the_package():
    """Guards against a check passing because it read nothing."""
    assert "minillm.pretrain.loop" in MODULES and "minillm.common" in MODULES
    assert module_graph()["minillm.pretrain.train"].keys() >= {
        "minillm.pretrain.loop", "minillm.pretrain.shards", "minillm.common", "minillm.clib"}


# ---- csrc/: no C file calls into another C file's internals -------------------------------------

C_KEYWORDS = {"if", "for", "while", "switch", "return", "sizeof", "defined", "do", "else", "case",
              "_Pragma", "__attribute__", "__typeof__", "typeof", "_Alignof", "alignof"}


def strip_c(text):
    """C text without comments, string and character literals, and preprocessor lines."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    text = re.sub(r'"(\\.|[^"\\\n])*"', '""', text)
    text = re.sub(r"'(\\.|[^'\\\n])*'", "''", text)
    text = re.sub(r"^[ \t]*#(?:[^\n]*\\\n)*[^\n]*", " ", text, flags=re.M)
    return text


def c_functions(text):
    """(defined functions {name: is static}, called names) of a stripped .c file: a definition
    is `name(...) {` at brace depth 0; a call is `name(` inside a body."""
    defs, calls, depth, start = {}, set(), 0, 0
    for i, ch in enumerate(text):
        if ch == "{":
            if depth == 0:
                head = text[start:i]
                found = re.search(r"(\w+)\s*\(([^()]|\([^()]*\))*\)\s*$", head)
                if found and "=" not in head[:found.start()] and found.group(1) not in C_KEYWORDS:
                    defs[found.group(1)] = bool(re.search(r"\bstatic\b", head[:found.start()]))
                body_start = i
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                calls |= set(re.findall(r"\b([A-Za-z_]\w*)\s*\(", text[body_start:i])) - C_KEYWORDS
                start = i + 1
        elif ch == ";" and depth == 0:
            start = i + 1
    return defs, calls


def csrc_files():
    files = {p.name: strip_c(p.read_text(encoding="utf-8")) for p in sorted(CSRC.glob("*.c"))}
    headers = {p.name: strip_c(p.read_text(encoding="utf-8")) for p in sorted(CSRC.glob("*.h"))}
    return files, headers


def test_c_parser_reads_definitions_and_calls():
    src = strip_c('static int twice(int x) { return 2 * x; }  /* f(1) */\n'
                  '#define M(x) (x)\nint api(const float *x, int n) { if (n) { n = twice(n); } '
                  'return helper(x, "g(2)"); }\nstatic const int table[] = {1, 2};\n')
    defs, calls = c_functions(src)
    assert defs == {"twice": True, "api": False}
    assert calls == {"twice", "helper"}


def test_c_files_include_no_c_files():
    found = [f"  csrc/{p.name}: {line.strip()}" for p in sorted(CSRC.glob("*.[ch]"))
             for line in p.read_text(encoding="utf-8").splitlines()
             if re.match(r'\s*#\s*include\s*[<"][^>"]+\.c[>"]', line)]
    assert not found, "a C file includes another C file:\n" + "\n".join(found)


def _cross_calls():
    """[(caller file, callee file, function)] for calls from one .c file into another."""
    files, _ = csrc_files()
    parsed = {name: c_functions(text) for name, text in files.items()}
    owner = {}
    for name, (defs, _) in parsed.items():
        for fn, static in defs.items():
            if not static:
                owner.setdefault(fn, name)
    out = []
    for name, (defs, calls) in parsed.items():
        for fn in sorted(calls - set(defs)):
            if fn in owner and owner[fn] != name:
                out.append((name, owner[fn], fn))
    return out


def test_cross_file_c_calls_are_declared_in_a_header():
    _, headers = csrc_files()
    declared = set().union(*(re.findall(r"\b([A-Za-z_]\w*)\s*\(", h) for h in headers.values()))
    found = [f"  {a} calls {fn} (defined in {b})" for a, b, fn in _cross_calls() if fn not in declared]
    assert not found, "calls into another C file's undeclared functions:\n" + "\n".join(found)


def test_c_files_do_not_call_each_other():
    """The .c files' call graph (A -> B: A calls a function defined in B) has no cycles;
    code that two files need goes in a third file (or a header) that both use."""
    graph = {name: {} for name in csrc_files()[0]}
    for a, b, fn in _cross_calls():
        graph[a].setdefault(b, fn)
    found = cycles(graph)
    assert not found, "C files that call each other:\n" + "\n".join(
        "  " + " -> ".join(f"{x} ({graph[x][y]})" for x, y in zip(c, c[1:])) + f" -> {c[-1]}" for c in found)


def test_every_command_names_functions_that_exist():
    """minillm/cli.py's table names modules and functions as literals (imported when the
    command runs): each must exist, so a rename cannot leave a command broken."""
    import importlib

    from minillm.cli import COMMANDS
    for name, (module_name, add_name, run_name, help_) in COMMANDS.items():
        module = importlib.import_module(module_name)
        assert callable(getattr(module, add_name, None)), f"{name}: {module_name}.{add_name}"
        assert callable(getattr(module, run_name, None)), f"{name}: {module_name}.{run_name}"
        assert help_
