"""The calculator tool: arithmetic parsed with `ast` and evaluated over a whitelist.

When the model writes <|python_start|>17*23<|python_end|>, the engine calls
calculator("17*23") and pastes "391" back between <|output_start|> and <|output_end|>.
The text comes from a model (or a user), so it is never given to eval/exec: ast.parse
turns it into a tree, and _evaluate walks the tree accepting only

    numbers (int, float)        + - * / // % **        unary - and +        parentheses
    functions: sqrt abs round min max floor ceil       constants: pi e

Everything else (names, attributes, calls of anything else, lambdas, strings, comparisons)
is an error. Every operation's cost is bounded before it runs: the input has at most
MAX_CHARS characters and MAX_DEPTH levels of nesting, every integer at most MAX_DIGITS
digits, and a power whose result would be longer is refused without computing it. So the
work is small and no timer is needed. Errors are the tool's answer ("error: division by
zero"): calculator() never raises.

    >>> calculator("17*23"), calculator("0.1+0.2"), calculator("6/3"), calculator("1/0")
    ('391', '0.3', '2', 'error: division by zero')

Read next: search.py (the other tool), then minillm/generate/engine.py (register_tool).
"""
import ast
import math
import operator

MAX_CHARS = 200           # longest expression accepted
MAX_DEPTH = 32            # deepest nesting of the syntax tree
MAX_DIGITS = 100          # longest integer: at most this many digits
MAX_ROUND_DIGITS = 20     # round(x, n): |n| at most this

BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
          ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
          ast.Pow: None}                        # ** goes through _power, which checks the size first
UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}
FUNCTIONS = {"sqrt": (math.sqrt, 1, 1), "abs": (abs, 1, 1), "round": (round, 1, 2),
             "min": (min, 2, 8), "max": (max, 2, 8), "floor": (math.floor, 1, 1),
             "ceil": (math.ceil, 1, 1)}          # name -> (function, fewest args, most args)
CONSTANTS = {"pi": math.pi, "e": math.e}
HINTS = {ast.BitXor: "use ** for powers (^ is not a power)", ast.Attribute: "attribute access is not allowed",
         ast.Lambda: "lambda is not allowed", ast.Compare: "comparisons are not supported"}


class CalcError(Exception):
    """A problem with the expression; its message becomes the tool's output."""


def calculator(text):
    """Evaluate an arithmetic expression -> its value as a string, or "error: ...".

    >>> calculator("2**10 - sqrt(16)"), calculator("9**9**9")
    ('1020', 'error: result too large (more than 100 digits)')
    """
    try:
        if not isinstance(text, str):
            raise CalcError("the input must be text")
        if len(text) > MAX_CHARS:
            raise CalcError(f"expression longer than {MAX_CHARS} characters")
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            raise CalcError("not an arithmetic expression") from None
        return format_number(_evaluate(tree.body, 0))
    except CalcError as e:
        return f"error: {e}"
    except ZeroDivisionError:
        return "error: division by zero"
    except OverflowError:
        return "error: result too large"
    except (ValueError, TypeError) as e:               # math domain errors and the like
        return f"error: {e}"
    except Exception as e:                             # subtle: a tool must answer, never crash the engine
        return f"error: {type(e).__name__}"


def _evaluate(node, depth):
    """The value of one node of the tree: int or float, never anything else."""
    # exercise: calculator
    if depth > MAX_DEPTH:
        raise CalcError("expression nested too deeply")
    if isinstance(node, ast.Constant):
        if type(node.value) not in (int, float):        # bool, str, complex, None: refused
            raise CalcError(f"{node.value!r} is not a number")
        return _checked(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in BINARY:
        left, right = _evaluate(node.left, depth + 1), _evaluate(node.right, depth + 1)
        if isinstance(node.op, ast.Pow):
            return _power(left, right)
        return _checked(BINARY[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in UNARY:
        return UNARY[type(node.op)](_evaluate(node.operand, depth + 1))
    if isinstance(node, ast.Name) and node.id in CONSTANTS:
        return CONSTANTS[node.id]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS:
        return _call(node, depth)
    if isinstance(node, ast.Name):
        raise CalcError(f"unknown name {node.id!r}")
    if isinstance(node, ast.Call):
        raise CalcError("only sqrt, abs, round, min, max, floor and ceil can be called")
    kind = type(node.op) if isinstance(node, (ast.BinOp, ast.UnaryOp, ast.BoolOp)) else type(node)
    hint = HINTS.get(kind)
    raise CalcError(hint or f"unsupported syntax ({type(node).__name__})")
    # end exercise


def _call(node, depth):
    name = node.func.id
    fn, fewest, most = FUNCTIONS[name]
    if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
        raise CalcError(f"{name}() takes plain arguments only")
    if not fewest <= len(node.args) <= most:
        count = str(fewest) if fewest == most else f"{fewest} to {most}"
        raise CalcError(f"{name}() takes {count} argument{'s' if most > 1 else ''}")
    args = [_evaluate(a, depth + 1) for a in node.args]
    if name == "round" and len(args) == 2:
        if not isinstance(args[1], int) or abs(args[1]) > MAX_ROUND_DIGITS:
            raise CalcError(f"round()'s digits must be an integer from -{MAX_ROUND_DIGITS} to {MAX_ROUND_DIGITS}")
    return _checked(fn(*args))


def _power(base, exponent):
    """base ** exponent, refused before computing when the result would be too long."""
    if isinstance(base, int) and isinstance(exponent, int) and exponent >= 0:
        # digits of |base| ** exponent = exponent * log10|base| (+1); 0, 1 and -1 stay small
        if abs(base) > 1 and exponent * math.log10(abs(base)) >= MAX_DIGITS:
            raise CalcError(f"result too large (more than {MAX_DIGITS} digits)")
        return base ** exponent
    if base == 0 and exponent < 0:
        raise ZeroDivisionError
    result = math.pow(base, exponent)                  # floats: OverflowError when too big
    return _checked(result)


def _checked(value):
    """value if it is a finite int or float within MAX_DIGITS digits, else CalcError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CalcError("the result is not a real number")
    if isinstance(value, int):
        if abs(value) >= 10 ** MAX_DIGITS:
            raise CalcError(f"result too large (more than {MAX_DIGITS} digits)")
        return value
    if not math.isfinite(value):
        raise CalcError("result too large")
    return value


def format_number(value):
    """The answer as text: integers (and whole floats below 1e15) without ".0", other
    floats with 12 significant digits, so 0.1+0.2 is "0.3".

    >>> format_number(391), format_number(2.0), format_number(1/3), format_number(1e20)
    ('391', '2', '0.333333333333', '1e+20')
    """
    if isinstance(value, int):
        return str(value)
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.12g}"
