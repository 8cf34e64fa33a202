r"""Reading the answer out of a generation, and scoring it: small pure functions, one per answer kind.

Two readings, named apart:

* the LINEAGE reading (`extract`, `is_correct`: the headline numbers) reproduces the code the published rows
  were scored with, rule for rule, including its quirks (listed per function below);
* the LENIENT reading (`extract_lenient`, `is_correct_lenient`: a diagnostic, never the headline) keeps the
  fallbacks this module used to have (the last number, a bare \boxed{}, $...$) with their known bugs fixed. It
  never marks wrong what the lineage marks right: is_correct_lenient = is_correct or (the fallback agrees).

Sources (clean-room: no code is copied; every rule cites the file it reproduces):

  [LA]  AGI-Edgerunners/LLM-Adapters commonsense_evaluate.py@816657208af4db747803f87ba40a4c71383fed7a
  [G8]  sufenlp/MiLoRA inference/gsm8k_inference.py@4740756d5d74700527d799a8d4a0c40dc9e92235
  [MI]  sufenlp/MiLoRA inference/MATH_inference.py@4740756d5d74700527d799a8d4a0c40dc9e92235
  [UT]  sufenlp/MiLoRA inference/util.py@4740756d5d74700527d799a8d4a0c40dc9e92235
  [GR]  sufenlp/MiLoRA inference/grader.py@4740756d5d74700527d799a8d4a0c40dc9e92235
  [RQ]  sufenlp/MiLoRA requirements.txt@4740756d5d74700527d799a8d4a0c40dc9e92235 (sympy==1.12, Fraction==2.2.0,
        no antlr4-python3-runtime, so sympy's parse_latex raises ImportError and [GR]'s symbolic_equal falls
        back to parse_expr: LaTeX strings never compare symbolically)
  [PM]  huggingface/peft method_comparison/MetaMathQA/utils.py@ad4e565c8a94081458db42cb771afed54e722d36
        (parse_answer, convert_to_decimal, get_accuracy: PEFT's MetaMathQA -> GSM8K benchmark)

Pure Python (re, math, fractions, ast). [GR]'s sympy step is reproduced only for what parse_expr turns into
numbers and polynomials/rational functions (see `_symbolic_equal`); the rest of sympy is not reproduced.
Generations are scored as given: the lineage's stop strings (vLLM, [G8]/[MI] SamplingParams) are applied by the
generator (benchmarks/llm/generate.cut_at_stop), not here.
"""

from __future__ import annotations

import ast
import math
import random
import re
import unicodedata
from decimal import Decimal, DivisionByZero, InvalidOperation
from fractions import Fraction

CHOICES: dict[str, tuple[str, ...]] = {
    "true_false": ("true", "false"),
    "solution": ("solution1", "solution2"),
    "answer": ("answer1", "answer2", "answer3", "answer4", "answer5"),
    "ending": ("ending1", "ending2", "ending3", "ending4"),
    "option": ("option1", "option2"),
}
KINDS = (*CHOICES, "number", "boxed", "peft_number")
ANSWER_IS = "The answer is: "      # [G8] extract_answer_number / [MI] process_results split on this, space included


def _unknown(kind: str) -> ValueError:
    return ValueError(f"Unknown answer kind {kind!r}; known: {', '.join(KINDS)}.")


# === commonsense ([LA]) =========================================================================================
def choice(kind: str, text: str) -> str:
    """[LA] extract_answer: the first of the kind's answer words anywhere in the text (re.findall(...)[0], case
    sensitive, inside longer words too: "untrue" reads "true", "answer12" reads "answer1"); "" when none.
    [LA] evaluate() scores `decoded.split("### Response:")[1].strip()`: for a generation (the continuation of the
    prompt, whose one "### Response:" it follows) that is the text before any "### Response:" it writes itself."""
    words = CHOICES[kind]
    found = re.findall("|".join(words), text.split("### Response:")[0].strip())
    return found[0] if found else ""


# === GSM8K ([G8], [GR]) =========================================================================================
_G8_NUMBER = re.compile(r"[\-+]?\d*[\.,/]?\d+")   # [G8] extract_answer_number's pattern: one separator at most


def _is_number(s: str) -> bool:
    """[G8] is_number: float() parses it, or it is one character with a unicode numeric value."""
    try:
        float(s)
        return True
    except ValueError:
        pass
    try:
        unicodedata.numeric(s)
        return True
    except (TypeError, ValueError):
        return False


def gsm8k_prediction(text: str) -> int | None:
    r"""[G8] extract_answer_number: the text after the LAST "The answer is: " (with the space; no marker -> None),
    stripped; the first match of [\-+]?\d*[\.,/]?\d+ in it (so "1,450,000" reads 1450, "1.23457e+07" reads 1,
    "- 5" reads 5); then
      * a/b: None unless both sides are numbers (is_number); b == "0" -> round(a); else round(a / b) through the
        `fraction` package's Fraction (Fraction==2.2.0, [RQ]), e.g. "8/4" -> 2, "3/4" -> 1, "5/2" -> 2;
      * otherwise round(float(match without commas)): ".5" -> 0, "2.5" -> 2 (Python rounds half to even),
        "2,5" -> 25; a match that overflows float to +inf -> None.
    Not reproduced: where [G8] raises and stops the whole evaluation (a denominator of several zeros such as
    "5/00": FractionException; a number overflowing to -inf: OverflowError) this returns None (counted wrong).
    The fraction package divides through floats; a/b is evaluated here as float(a) / float(b), the same for
    numerator and denominator below 2**53."""
    parts = text.split(ANSWER_IS)
    if len(parts) < 2:
        return None
    found = _G8_NUMBER.search(parts[-1].strip())
    if not found:
        return None
    number = found.group()
    if "/" in number:
        numerator, denominator = number.split("/")
        if not (_is_number(numerator) and _is_number(denominator)):
            return None
        if denominator == "0":
            return round(float(numerator.replace(",", "")))
        if float(denominator) == 0:
            return None                               # [G8] raises here (fraction.FractionException)
        return round(float(numerator) / float(denominator))
    value = float(number.replace(",", ""))
    if math.isinf(value):
        return None                                   # +inf: [G8] returns None; -inf: [G8] raises
    return round(value)


def _gsm8k_reference(label: object) -> float | None:
    """[G8] gsm8k_test reads the reference as int(text after "#### " without commas); a label that is not an
    integer (never in GSM8K) is read as a float here instead of raising."""
    text = str(label).strip().replace(",", "")
    try:
        return float(int(text))
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return None


def gsm8k_equal(prediction: int, reference: float) -> bool:
    """[G8] gsm8k_test: float(y_pred) == float(answer) or [GR] math_equal(y_pred, answer), whose numeric branch
    accepts the reference, the reference / 100 and the reference * 100, each within math.isclose(rel_tol=1e-4)
    (so 1800 answers 18, 50 answers 5000, and 123460 answers 123456)."""
    value = float(prediction)
    return value == reference or any(math.isclose(x, value, rel_tol=1e-4)
                                     for x in (reference / 100, reference, reference * 100))


# === MATH ([MI], [UT], [GR]) ====================================================================================
def math_prediction(text: str) -> str | None:
    r"""[MI] process_results: the text after the LAST "The answer is: " (with the space; no marker -> None: the
    lineage counts it wrong, a \boxed{} or $...$ elsewhere is not read), cut at the first ".\n", stripped, one
    trailing "." removed, stripped again. Nothing else is removed: "\boxed{9}" or "$9$" after the marker stay."""
    parts = text.split(ANSWER_IS)
    if len(parts) < 2:
        return None
    return parts[-1].split(".\n")[0].strip().removesuffix(".").strip()


def last_boxed_only(text: str) -> str | None:
    r"""[UT] last_boxed_only_string: from the last "\boxed" (only when there is none, the last "\fbox") to the
    brace that closes the first "{" after it (braces counted from there); None when none or never closed."""
    start = text.rfind("\\boxed")
    if start < 0:
        start = text.rfind("\\fbox")
        if start < 0:
            return None
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start:i + 1]
    return None


def math_reference(solution: str) -> str | None:
    r"""[MI] test_hendrycks_math: remove_boxed(last_boxed_only_string(output)): the inside of the solution's last
    box if that box is written exactly "\boxed{...}"; None otherwise ("\boxed 5", "\boxed {5}", "\fbox{5}", no
    box) - and a None reference is never matched ([UT] is_equiv(x, None) is False)."""
    boxed = last_boxed_only(solution)
    if boxed is None or not boxed.startswith("\\boxed{") or not boxed.endswith("}"):
        return None
    return boxed[len("\\boxed{"):-1]


class _Unnormalisable(Exception):
    """Raised where [UT] strip_string raises (is_equiv then takes its except branch)."""


def _fix_fracs(s: str) -> str:
    r"""[UT] fix_fracs: after each "\frac" not followed by "{", brace the next one or two characters ("\frac12"
    -> "\frac{1}{2}", "\frac1{72}" -> "\frac{1}{72}"); a "\frac" with one character after it leaves the whole
    string as it was; a "\frac" with nothing after it raises."""
    pieces = s.split("\\frac")
    out = pieces[0]
    for piece in pieces[1:]:
        out += "\\frac"
        if piece == "":
            raise _Unnormalisable("\\frac at the end")
        if piece[0] == "{":
            out += piece
            continue
        if len(piece) < 2:
            return s
        a, b = piece[0], piece[1]
        out += ("{" + a + "}{" + b + "}" if b != "{" else "{" + a + "}" + b) + piece[2:]
    return out


def _fix_sqrt(s: str) -> str:
    r"""[UT] fix_sqrt: "\sqrt3" -> "\sqrt{3}" (one character braced); a "\sqrt" with nothing after it raises."""
    if "\\sqrt" not in s:
        return s
    pieces = s.split("\\sqrt")
    out = pieces[0]
    for piece in pieces[1:]:
        if piece == "":
            raise _Unnormalisable("\\sqrt at the end")
        out += "\\sqrt" + (piece if piece[0] == "{" else "{" + piece[0] + "}" + piece[1:])
    return out


def _fix_a_slash_b(s: str) -> str:
    r"""[UT] fix_a_slash_b: with exactly one "/", "a/b" of two integers written plainly -> "\frac{a}{b}"; a side
    that int() cannot read raises (the ValueError is not caught there); "03/4" and the like stay."""
    pieces = s.split("/")
    if len(pieces) != 2:
        return s
    try:
        a, b = int(pieces[0]), int(pieces[1])
    except ValueError as e:
        raise _Unnormalisable("a/b with a non-integer side") from e
    return "\\frac{" + str(a) + "}{" + str(b) + "}" if s == f"{a}/{b}" else s


def strip_math(s: str) -> str:
    r"""[UT] strip_string, step by step: drop newlines and "\!"; "\\" -> "\"; tfrac/dfrac -> frac; drop
    "\left", "\right", "^{\circ}", "^\circ", "\$"; cut at "\text{ " (units; two of them raise); drop "\%" (a bare
    "%" stays, and so do a bare "$", "\,", "\mbox", "°"); " ." -> " 0.", "{." -> "{0."; "" stays ""; a leading "."
    gets a "0"; with exactly one "=" whose left side is at most 2 characters keep the right side ("x = 5");
    fix_sqrt; drop spaces; fix_fracs; "0.5" -> "\frac{1}{2}"; fix_a_slash_b. Raises _Unnormalisable where
    strip_string raises."""
    s = s.replace("\n", "").replace("\\!", "").replace("\\\\", "\\")
    s = s.replace("tfrac", "frac").replace("dfrac", "frac").replace("\\left", "").replace("\\right", "")
    s = s.replace("^{\\circ}", "").replace("^\\circ", "").replace("\\$", "")
    if "\\text{ " in s:
        units = s.split("\\text{ ")
        if len(units) != 2:
            raise _Unnormalisable("several \\text{ ")
        s = units[0]
    s = s.replace("\\%", "")
    s = s.replace(" .", " 0.").replace("{.", "{0.")
    if not s:
        return s
    if s[0] == ".":
        s = "0" + s
    sides = s.split("=")
    if len(sides) == 2 and len(sides[0]) <= 2:
        s = sides[1]
    s = _fix_sqrt(s)
    s = s.replace(" ", "")
    s = _fix_fracs(s)
    if s == "0.5":
        s = "\\frac{1}{2}"
    return _fix_a_slash_b(s)


def _is_digit(s: object) -> bool:
    """[GR] is_digit: float() reads it once commas are dropped (so "1,2" is 12, "52_8" is 528, "1e5" a number)."""
    try:
        float(str(s).replace(",", ""))
        return True
    except ValueError:
        return False


def math_equal(prediction: str, reference: str) -> bool:
    """[GR] math_equal(prediction, reference) with its defaults (include_percentage, is_close, no timeout):
    1. both numbers (is_digit): equal when the prediction is within math.isclose(rel_tol=1e-4) of the reference,
       the reference / 100 or the reference * 100; nothing else is tried;
    2. an empty prediction is wrong;
    3. a prediction in [...] (reference not starting with "(") or in (...) (reference not starting with "["):
       brackets stripped from both ends of both; then every "{", "}", "(", ")" dropped from both: equal strings
       are equal (so "\\frac{1}{43}" equals "\\frac{14}{3}", and "(3,4)" equals "(3,4]");
    4. both [...] or both (...): the comma-separated parts, pairwise through math_equal;
    5. symbolic_equal (see _symbolic_equal)."""
    if _is_digit(prediction) and _is_digit(reference):
        p, r = float(str(prediction).replace(",", "")), float(str(reference).replace(",", ""))
        return any(math.isclose(x, p, rel_tol=1e-4) for x in (r / 100, r, r * 100))
    if not prediction:
        return False
    reference, prediction = str(reference).strip(), str(prediction).strip()
    pred_str, ref_str = prediction, reference
    if ((prediction.startswith("[") and prediction.endswith("]") and not reference.startswith("("))
            or (prediction.startswith("(") and prediction.endswith(")") and not reference.startswith("["))):
        pred_str, ref_str = pred_str.strip("[]()"), ref_str.strip("[]()")
    for bracket in "{}()":
        ref_str, pred_str = ref_str.replace(bracket, ""), pred_str.replace(bracket, "")
    if pred_str == ref_str:
        return True
    if ((prediction.startswith("[") and prediction.endswith("]") and reference.startswith("[")
         and reference.endswith("]"))
            or (prediction.startswith("(") and prediction.endswith(")") and reference.startswith("(")
                and reference.endswith(")"))):
        pred_parts, ref_parts = prediction[1:-1].split(","), reference[1:-1].split(",")
        if len(pred_parts) == len(ref_parts) and all(math_equal(p, r) for p, r in zip(pred_parts, ref_parts)):
            return True
    return _symbolic_equal(prediction, reference)


def is_equiv(prediction: str | None, reference: str | None) -> bool:
    """[UT] is_equiv: both None -> True, one None -> False; else math_equal(strip(p), strip(r)) or the stripped
    strings are equal. Where strip_string raises (on either side: two "\\text{ ", a dangling "\\sqrt" or "\\frac",
    one "/" with a side int() cannot read, e.g. "\\sqrt{2}/2") it returns math_equal(p, p) or p == r: true for
    any non-empty, non-NaN prediction - the lineage counts those right whatever the reference."""
    if prediction is None and reference is None:
        return True
    if prediction is None or reference is None:
        return False
    try:
        a, b = strip_math(prediction), strip_math(reference)
    except _Unnormalisable:
        return math_equal(prediction, prediction) or prediction == reference
    return math_equal(a, b) or a == b


# --- [GR] symbolic_equal, the parse_expr subset --------------------------------------------------------------
_SYMPY_NAMES = frozenset({"E", "I", "N", "O", "Q", "S"})    # single letters that sympy's namespace defines
_CONSTANTS = {"pi": Fraction(math.pi), "E": Fraction(math.e)}   # sympy's pi and E, as floats
_FUNCTIONS = {"sqrt": math.sqrt, "exp": math.exp, "log": math.log, "sin": math.sin, "cos": math.cos,
              "tan": math.tan}            # of numbers only
_MAX_POWER = 64
_POINTS = 5


class _Unsupported(Exception):
    """An expression this module does not evaluate (sympy may; see _symbolic_equal)."""


class _Value:
    """An exact value over Q, or a float one (has_float), possibly with free symbols, evaluated at fixed random
    points: enough to decide whether two rational expressions are identical (what sympy's simplify(a - b) == 0
    decides for such expressions). Symbol-free values are the same at every point."""

    def __init__(self, values: tuple[Fraction, ...], has_symbols: bool, has_float: bool):
        self.values, self.has_symbols, self.has_float = values, has_symbols, has_float


class _Evaluator:
    """Evaluates a Python expression tree as sympy would after parsing it: `xor_is_power` False is parse_expr
    (standard transformations: "^" is Python's xor, defined by sympy for two Integers only), True is sympify
    (convert_xor: "^" is a power), which [GR]'s N() applies to a string parse_expr could not read."""

    def __init__(self, env: list[dict[str, Fraction]], rng: random.Random, xor_is_power: bool):
        self.env, self.rng, self.xor_is_power = env, rng, xor_is_power

    def symbol(self, name: str) -> _Value:
        for point in self.env:
            point.setdefault(name, Fraction(self.rng.randint(-97, 97), self.rng.randint(1, 89)) + Fraction(1, 7919))
        return _Value(tuple(point[name] for point in self.env), True, False)

    def __call__(self, node: ast.AST) -> _Value:
        if isinstance(node, ast.Expression):
            return self(node.body)
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            value = Fraction(node.value) if isinstance(node.value, int) else Fraction(repr(node.value))
            return _Value((value,) * _POINTS, False, isinstance(node.value, float))
        if isinstance(node, ast.Name):
            if node.id in _CONSTANTS:
                return _Value((_CONSTANTS[node.id],) * _POINTS, False, True)
            if len(node.id) != 1 or node.id in _SYMPY_NAMES:
                raise _Unsupported(node.id)   # other sympy objects, or multi-letter symbols: not reproduced
            return self.symbol(node.id)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
            x = self(node.operand)
            sign = 1 if isinstance(node.op, ast.UAdd) else -1
            return _Value(tuple(sign * v for v in x.values), x.has_symbols, x.has_float)
        if isinstance(node, ast.BinOp):
            return self.binary(node.op, self(node.left), self(node.right))
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS
                and len(node.args) == 1 and not node.keywords):
            x = self(node.args[0])
            if x.has_symbols:
                raise _Unsupported("a function of a symbol")
            if node.func.id == "sqrt" and x.values[0] >= 0:
                v = x.values[0]
                root = Fraction(math.isqrt(v.numerator), math.isqrt(v.denominator))
                if root * root == v:
                    return _Value((root,) * _POINTS, False, x.has_float)
            try:
                value = Fraction(_FUNCTIONS[node.func.id](float(x.values[0])))
            except (ValueError, OverflowError) as e:
                raise _Unsupported("outside the real domain") from e
            return _Value((value,) * _POINTS, False, True)
        raise _Unsupported(type(node).__name__)

    def binary(self, op: ast.operator, a: _Value, b: _Value) -> _Value:
        symbols, floats = a.has_symbols or b.has_symbols, a.has_float or b.has_float
        pairs = list(zip(a.values, b.values))
        try:
            if isinstance(op, ast.Add):
                return _Value(tuple(x + y for x, y in pairs), symbols, floats)
            if isinstance(op, ast.Sub):
                return _Value(tuple(x - y for x, y in pairs), symbols, floats)
            if isinstance(op, ast.Mult):
                return _Value(tuple(x * y for x, y in pairs), symbols, floats)
            if isinstance(op, ast.Div):
                return _Value(tuple(x / y for x, y in pairs), symbols, floats)
            if isinstance(op, ast.Pow) or (isinstance(op, ast.BitXor) and self.xor_is_power):
                if b.has_symbols or any(abs(y) > _MAX_POWER for _, y in pairs):
                    raise _Unsupported("power")
                if all(y.denominator == 1 for _, y in pairs):
                    return _Value(tuple(x ** int(y) for x, y in pairs), symbols, floats)
                if a.has_symbols or any(x < 0 for x, _ in pairs):
                    raise _Unsupported("a fractional power of a symbol or of a negative number")
                return _Value(tuple(Fraction(float(x) ** float(y)) for x, y in pairs), False, True)
            if isinstance(op, ast.BitXor) and not (symbols or floats) and all(
                    x.denominator == 1 and y.denominator == 1 for x, y in pairs):
                return _Value(tuple(Fraction(int(x) ^ int(y)) for x, y in pairs), False, False)
            if isinstance(op, ast.Mod) and not (symbols or floats):
                return _Value(tuple(x % y for x, y in pairs), False, False)
            if isinstance(op, ast.FloorDiv) and not (symbols or floats):
                return _Value(tuple(Fraction(x // y) for x, y in pairs), False, False)
        except ZeroDivisionError as e:
            raise _Unsupported("division by zero") from e
        raise _Unsupported(type(op).__name__)


_FACTORIAL = re.compile(r"(?<![\w.])(\d+)!(?!=)")


def _parse_sympy_like(s: str, evaluate: _Evaluator) -> _Value | None:
    """What sympy's parse_expr (or sympify) makes of s, for the subset reproduced: integer and float literals,
    single-letter symbols (not E, I, N, O, Q, S), the constants pi and E (as floats), + - * / ** (a fractional
    power of a non-negative number as a float), "^" (see _Evaluator), % and // between numbers, sqrt, exp, log,
    sin, cos, tan of numbers, "n!" for an integer n, "#" starting a comment (Python's tokenizer: "9###" is 9).
    Anything else -> None (sympy might still read it; see _symbolic_equal)."""
    s = s.split("#", 1)[0]
    s = _FACTORIAL.sub(lambda m: str(math.factorial(int(m.group(1)))) if int(m.group(1)) <= 200 else m.group(0),
                       s)
    try:
        tree = ast.parse(s.strip(), mode="eval")
    except (SyntaxError, ValueError):
        return None
    try:
        return evaluate(tree)
    except (_Unsupported, OverflowError, ValueError, RecursionError):
        return None


def _symbolic_equal(prediction: str, reference: str) -> bool:
    """[GR] symbolic_equal(a, b) without parse_latex ([RQ]): each side through sympy's parse_expr (kept as the
    string when that fails); equal when simplify(a - b) == 0 (both parsed), or when
    math.isclose(N(a), N(b), rel_tol=1e-3), where N() of a string that parse_expr could not read re-reads it
    with sympify, for which "^" is a power. Reproduced: numbers ("2*3" = 6, "3!" = 6, "-2**8" = -256, "2^3" =
    1 under parse_expr, "0.1+0.05" = 0.15, "2^0.5" = sqrt(2) through N) and rational expressions in
    single-letter symbols (identical at 5 random rational points, exact arithmetic: "-q+p" = "p-q"). Anything
    with "\\" or implicit products ("2x", "5i") fails in sympy too, so LaTeX never compares here.
    Not reproduced (answered False): multi-letter symbols, sympy names other than pi and E (I, oo, gamma, ...),
    complex numbers, functions of symbols, a "!" after anything but an integer; floats mixed with symbols
    compare exactly here (sympy: in binary floats)."""
    env: list[dict[str, Fraction]] = [{} for _ in range(_POINTS)]
    rng = random.Random(20240601)
    parse_expr, sympify = _Evaluator(env, rng, xor_is_power=False), _Evaluator(env, rng, xor_is_power=True)
    a, b = _parse_sympy_like(prediction, parse_expr), _parse_sympy_like(reference, parse_expr)
    if a is not None and b is not None and a.values == b.values:
        return True                                     # simplify(a - b) == 0
    a = a if a is not None else _parse_sympy_like(prediction, sympify)
    b = b if b is not None else _parse_sympy_like(reference, sympify)
    if a is None or b is None or a.has_symbols or b.has_symbols:
        return False                                    # N() of an unreadable string or of a symbol
    try:
        return math.isclose(float(a.values[0]), float(b.values[0]), rel_tol=1e-3)
    except OverflowError:
        return False


# === PEFT's MetaMathQA benchmark ([PM]) ==========================================================================
PEFT_MARKERS = ("The answer is: ", "The answer is ", "The final answer is: ", "The final answer is ", "#### ")


def peft_parse(text: str) -> str | None:
    """[PM] parse_answer: the text stripped, then stripped of trailing ".!?"; the FIRST of PEFT_MARKERS (in that
    order) that occurs anywhere in it, else None; what follows the marker's LAST occurrence, up to the first
    newline, stripped of " .!?$%" at both ends (so ".5" reads "5", "$18" reads "18")."""
    text = text.strip().rstrip(".!?")
    marker = next((m for m in PEFT_MARKERS if m in text), None)
    if marker is None:
        return None
    return text.rpartition(marker)[2].strip().split("\n", 1)[0].strip(" .!?$%")


def peft_value(parsed: str | None) -> float | str | None:
    """[PM] convert_to_decimal, then get_accuracy's float(): a number (Decimal syntax, so "1_8" and "1.8e1" are
    numbers and "1,000" is not) or one "a/b" fraction (b != 0) as a float; any other parsed text as itself (it
    then only equals the same text); None when nothing was parsed."""
    if parsed is None:
        return None
    s = parsed.strip()
    try:
        if "/" in s:
            parts = s.split("/")
            if len(parts) != 2:
                return parsed
            denominator = Decimal(parts[1].strip())
            if denominator == 0:
                return parsed
            return float(Decimal(parts[0].strip()) / denominator)
        return float(Decimal(s))
    except (DivisionByZero, InvalidOperation, ValueError):
        return parsed


def peft_reference(label: object) -> str | None:
    """The reference as [PM] get_accuracy reads GSM8K's answer text (parse_answer: after its "#### "); a label that
    is already the bare number (no marker) is taken as it is."""
    text = str(label)
    parsed = peft_parse(text)
    return parsed if parsed is not None else text.strip()


def peft_equal(generation: str, label: object) -> bool:
    """[PM] get_accuracy for one row: both readings present and equal (floats exactly, nan never; text only to the
    same text). PEFT scores the decoded output with its prompt (run.py evaluate): pass the prompt + continuation."""
    prediction, reference = peft_value(peft_parse(generation)), peft_value(peft_reference(label))
    return prediction is not None and reference is not None and prediction == reference


# === the lineage reading: public API ============================================================================
def lineage_prediction(kind: str, text: str) -> str | None:
    """The lineage's prediction as a string with every digit it kept (None where it reads none; "" is a real
    MATH prediction: the marker followed by nothing)."""
    if kind in CHOICES:
        return choice(kind, text)
    if kind == "number":
        value = gsm8k_prediction(text)
        return None if value is None else str(value)
    if kind == "boxed":
        return math_prediction(text)
    if kind == "peft_number":
        return peft_parse(text)
    raise _unknown(kind)


def extract(kind: str, text: str) -> str:
    """The lineage's prediction of answer kind `kind` read from a generation, as a string ("" when none)."""
    return lineage_prediction(kind, text) or ""


def is_correct(kind: str, generation: str, label: object) -> bool:
    """Whether `generation` answers `label` (the test file's `answer` field) as the lineage scores it:
    commonsense: the answer word == label ([LA] `label == predict`, no stripping);
    number: gsm8k_prediction, then gsm8k_equal against int(label without commas) ([G8]);
    peft_number: peft_equal against GSM8K's answer text or the bare number ([PM]);
    boxed: math_prediction, then is_equiv against the label ([MI]); a missing reference (None, or "" as the data
    loader stores an underivable one) is never matched."""
    if kind in CHOICES:
        return choice(kind, generation) == label
    if kind == "number":
        value, reference = gsm8k_prediction(generation), _gsm8k_reference(label)
        return value is not None and reference is not None and gsm8k_equal(value, reference)
    if kind == "boxed":
        if label is None or label == "":
            return False
        return is_equiv(math_prediction(generation), str(label))
    if kind == "peft_number":
        return peft_equal(generation, label)
    raise _unknown(kind)


# === the lenient reading (diagnostic, never the headline) ======================================================
_INT = r"(?:\d{1,3}(?:,\d{3})+(?![\d,])|\d+)"
_DEC = rf"(?:{_INT}(?:\.\d+)?|\.\d+)"
_LENIENT_NUMBER = re.compile(rf"-?{_DEC}(?:[eE][-+]?\d+)?(?:\s*/\s*{_DEC})?")
_ANSWER_IS_ANY = re.compile(r"the\s+(?:final\s+)?answer\s+is\s*:?", re.IGNORECASE)


def _number_value(text: str) -> Fraction | None:
    """A number as _LENIENT_NUMBER matches it, exactly: commas dropped, a/b divided; None for x/0."""
    text = text.replace(",", "").replace(" ", "")
    numerator, _, denominator = text.partition("/")
    try:
        value = Fraction(numerator)
        return value / Fraction(denominator) if denominator else value
    except (ValueError, ZeroDivisionError):
        return None


def exact_string(value: Fraction) -> str:
    """Every digit: "2", "-0.75", "12345678", "0.0000672"; "p/q" when the decimal does not terminate."""
    p, q = value.numerator, value.denominator
    twos = fives = 0
    while q % 2 == 0:
        q //= 2
        twos += 1
    while q % 5 == 0:
        q //= 5
        fives += 1
    if q != 1:
        return f"{value.numerator}/{value.denominator}"
    places = max(twos, fives)
    digits = str(abs(p) * 10 ** places // value.denominator).rjust(places + 1, "0")
    body = digits if places == 0 else f"{digits[:-places]}.{digits[-places:]}"
    return ("-" if p < 0 else "") + body


def lenient_number(text: str) -> Fraction | None:
    """This module's earlier reading, bugs fixed: the first number after the last "the answer is" (any case,
    colon and space optional), else the last number in the text. Numbers: optional "-", thousands commas
    ("1,450,000"), decimals with or without a leading digit (".5"), an exponent ("1.23457e+07"), and a/b
    evaluated exactly ("8/4" = 2, "3/4" = 0.75)."""
    markers = list(_ANSWER_IS_ANY.finditer(text))
    if markers:
        for found in _LENIENT_NUMBER.finditer(text[markers[-1].end():]):
            if (value := _number_value(found.group())) is not None:
                return value
    values = [v for m in _LENIENT_NUMBER.finditer(text) if (v := _number_value(m.group())) is not None]
    return values[-1] if values else None


def _last_braced_after(text: str, command: str) -> str | None:
    r"""The argument of the last `command` in text: {...} with balanced braces, or one token ("\boxed 5")."""
    start = text.rfind(command)
    if start < 0:
        return None
    rest = text[start + len(command):]
    stripped = rest.lstrip()
    if stripped.startswith("{"):
        depth = 0
        for i, c in enumerate(stripped):
            depth += {"{": 1, "}": -1}.get(c, 0)
            if depth == 0:
                return stripped[1:i]
        return None
    token = re.match(r"\s+([^\s$.,;]+)", rest)
    return token.group(1) if token else None


def lenient_math(text: str) -> str | None:
    r"""The lineage's reading when "The answer is: " is there; else the statement after the last "the answer is"
    (any case, colon optional) to the end of its sentence; else the last \boxed{...} / \boxed X / \fbox{...};
    else the last $...$; else None."""
    stated = math_prediction(text)
    if stated is not None:
        return stated
    markers = list(_ANSWER_IS_ANY.finditer(text))
    if markers:
        statement = text[markers[-1].end():].split(".\n")[0].strip().removesuffix(".").strip()
        if statement:
            return statement
    for command in ("\\boxed", "\\fbox"):
        if (boxed := _last_braced_after(text, command)) is not None:
            return boxed
    dollars = re.findall(r"\$([^$]+)\$", text)
    return dollars[-1].strip() if dollars else None


def normalize_math(answer: str) -> str:
    r"""The lenient normalisation: strip_string's rules without its exceptions (where it would raise, the
    string is kept as it stands at that step), plus: \boxed{X} / \text{X} / \mbox{X} unwrapped, bare "$" and "%",
    "°", "\," dropped."""
    s = answer.split("\\text{ ")[0].split("\\mbox{ ")[0]          # units written after the number
    for command in ("\\boxed", "\\text", "\\mbox", "\\textbf"):
        s = re.sub(re.escape(command) + r"\{([^{}]*)\}", r"\1", s)
    s = s.replace("\\$", "").replace("$", "").replace("\\%", "").replace("%", "").replace("\u00b0", "")
    s = s.replace("\\,", "").replace("\\ ", "")
    s = s.replace("\\\\", "\\").replace("\\!", "").replace("tfrac", "frac").replace("dfrac", "frac")
    s = s.replace("\\left", "").replace("\\right", "").replace("^{\\circ}", "").replace("^\\circ", "")
    s = s.replace("\n", "")
    s = s.replace(" .", " 0.").replace("{.", "{0.")
    if s.startswith("."):
        s = "0" + s
    sides = s.split("=")
    if len(sides) == 2 and len(sides[0].strip()) <= 2:
        s = sides[1]
    for step in (_fix_sqrt, lambda x: x.replace(" ", ""), _fix_fracs, _fix_a_slash_b):
        try:
            s = step(s)
        except _Unnormalisable:
            s = s.replace(" ", "")
    return "\\frac{1}{2}" if s == "0.5" else s


_FRAC = re.compile(r"(-?)\\frac\{(-?[\d.]+)\}\{(-?[\d.]+)\}")


def _lenient_value(s: str) -> Fraction | None:
    found = _FRAC.fullmatch(s)
    if found:
        try:
            value = Fraction(found.group(2)) / Fraction(found.group(3))
        except (ValueError, ZeroDivisionError):
            return None
        return -value if found.group(1) else value
    if _LENIENT_NUMBER.fullmatch(s):
        return _number_value(s)
    return None


def lenient_math_equal(prediction: str | None, reference: str | None) -> bool:
    """The lenient comparison: equal after normalize_math, or both numbers within 1e-4 relative."""
    if not prediction or not reference:
        return False
    a, b = normalize_math(prediction), normalize_math(reference)
    if a == b:
        return True
    x, y = _lenient_value(a), _lenient_value(b)
    return x is not None and y is not None and abs(x - y) <= Fraction(1, 10 ** 4) * max(1, abs(y))


def extract_lenient(kind: str, text: str) -> str:
    """The LENIENT prediction (a diagnostic, not the headline): commonsense as the lineage (it has no fallback);
    number: lenient_number written exactly (exact_string); boxed: lenient_math. "" when none."""
    if kind in CHOICES:
        return choice(kind, text)
    if kind in ("number", "peft_number"):
        value = lenient_number(text)
        return "" if value is None else exact_string(value)
    if kind == "boxed":
        return lenient_math(text) or ""
    raise _unknown(kind)


def is_correct_lenient(kind: str, generation: str, label: object) -> bool:
    """LENIENT: the lineage's verdict, or else the fallback reading agrees with the label (number: within 1e-3,
    boxed: lenient_math_equal; commonsense: no fallback). Never below is_correct."""
    return is_correct(kind, generation, label) or fallback_correct(kind, generation, label)


def fallback_correct(kind: str, generation: str, label: object) -> bool:
    """Whether the lenient fallback reading alone agrees with the label (is_correct_lenient's second half)."""
    if kind in CHOICES:
        return False
    if kind in ("number", "peft_number"):
        text = str(label).strip() if kind == "number" else (peft_reference(label) or "")
        value, reference = lenient_number(generation), _number_value(text)
        return value is not None and reference is not None and abs(value - reference) <= Fraction(1, 1000)
    if kind == "boxed":
        return lenient_math_equal(lenient_math(generation), None if label is None else str(label))
    raise _unknown(kind)


# === reference answers of the training/test files ===============================================================
def derive_answer(rule: str, output: str) -> str | None:
    r"""The reference answer of a training/test output without an `answer` field: "metamath": after the last
    "The answer is:" (MetaMathQA), stripped; "gsm8k": after the last "####" without thousands commas ([G8] reads
    int(split('#### ')[1] without commas)); "boxed": [MI]'s math_reference (None when the last box is not
    written \boxed{...}); "whole": the output itself (PEFT's reader parses GSM8K's answer text, [PM])."""
    if rule == "metamath":
        return output.rsplit("The answer is:", 1)[1].strip() if "The answer is:" in output else None
    if rule == "gsm8k":
        return output.rsplit("####", 1)[1].strip().replace(",", "") if "####" in output else None
    if rule == "boxed":
        return math_reference(output)
    if rule == "whole":
        return output
    raise ValueError(f"Unknown answer rule {rule!r}.")
