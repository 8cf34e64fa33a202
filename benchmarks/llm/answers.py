"""Reading the answer out of a generation, and scoring it: small pure functions, one per answer kind.

Commonsense (LLM-Adapters' commonsense_evaluate.py): the first of the task's answer words in the generation
("true"/"false", "solution1"/"solution2", "answer1".."answer5", "ending1".."ending4", "option1"/"option2"),
compared with the label as a string. GSM8K: the number after MetaMath's "The answer is:" when the generation
has it, else the last number in it (LLM-Adapters' evaluate.py), compared within 1e-3. MATH: the text after
"The answer is:" (MetaMath's MATH_inference.py), else the last \\boxed{...}, compared with the reference's last
\\boxed{...} after the usual normalisation of Hendrycks et al.'s MATH code (fractions, units, spaces, ...),
or numerically when both sides are numbers.
"""

from __future__ import annotations

import re

CHOICES: dict[str, tuple[str, ...]] = {
    "true_false": ("true", "false"),
    "solution": ("solution1", "solution2"),
    "answer": ("answer1", "answer2", "answer3", "answer4", "answer5"),
    "ending": ("ending1", "ending2", "ending3", "ending4"),
    "option": ("option1", "option2"),
}
ANSWER_IS = "The answer is:"
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def choice(kind: str, text: str) -> str:
    """The first answer word of `kind` in `text` ("" when there is none)."""
    found = re.search("|".join(CHOICES[kind]), text.strip())
    return found.group(0) if found else ""


def _after_answer_is(text: str) -> str | None:
    return text.rsplit(ANSWER_IS, 1)[1] if ANSWER_IS in text else None


def last_number(text: str) -> float | None:
    """The number after "The answer is:" if the text says it, else the last number in the text (commas
    as thousands separators are dropped); None when there is none."""
    after = _after_answer_is(text)
    if after is not None and (stated := NUMBER.findall(after.replace(",", ""))):
        return float(stated[0])
    numbers = NUMBER.findall(text.replace(",", ""))
    return float(numbers[-1]) if numbers else None


def last_boxed(text: str) -> str | None:
    r"""The content of the last \boxed{...} (or \fbox{...}) with balanced braces; None when there is none."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    open_at = text.find("{", start)
    end = _closing_brace(text, open_at) if open_at >= 0 else None
    return None if end is None else text[open_at + 1:end]


def _closing_brace(text: str, at: int) -> int | None:
    """The index of the brace that closes the "{" at `at` (braces balanced), or None when it is never closed."""
    depth = 0
    for i in range(at, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return i
    return None


def math_prediction(text: str) -> str | None:
    """MATH: the statement after "The answer is:" up to the end of its sentence, else the last \\boxed{}."""
    after = _after_answer_is(text)
    if after is not None:
        return after.split(".\n")[0].strip().removesuffix(".").strip()
    return last_boxed(text)


def _braced(text: str, at: int) -> tuple[str, int]:
    """The group starting at `at`: {...} (balanced) or one character; and the index after it."""
    end = _closing_brace(text, at) if text[at:at + 1] == "{" else None
    if end is not None:
        return text[at:end + 1], end + 1
    return ("{" + text[at] + "}", at + 1) if at < len(text) else ("", at)


def _fix_fracs(text: str) -> str:
    r"""\frac12 -> \frac{1}{2}, \frac1{72} -> \frac{1}{72}; \sqrt3 -> \sqrt{3}."""
    for command, args in (("\\frac", 2), ("\\sqrt", 1)):
        out, i = [], 0
        while (j := text.find(command, i)) >= 0:
            out.append(text[i:j + len(command)])
            i = j + len(command)
            for _ in range(args):
                group, i = _braced(text, i)
                out.append(group)
        text = "".join(out) + text[i:]
    return text


def normalize_math(answer: str) -> str:
    """A MATH answer in canonical form (the normalisation of Hendrycks et al.'s MATH evaluation)."""
    s = answer.replace("\n", "").replace("\\!", "").replace("\\\\", "\\")
    s = s.replace("tfrac", "frac").replace("dfrac", "frac").replace("\\left", "").replace("\\right", "")
    s = s.replace("^{\\circ}", "").replace("^\\circ", "").replace("\\$", "").replace("$", "")
    s = s.split("\\text{ ")[0]                        # units written after the number
    s = s.replace("\\%", "").replace("%", "")
    s = s.replace(" .", " 0.").replace("{.", "{0.")
    if s.startswith("."):
        s = "0" + s
    if s.count("=") == 1 and len(s.split("=")[0].strip()) <= 2:   # "x = 3" -> "3"
        s = s.split("=")[1]
    s = _fix_fracs(s.replace(" ", ""))
    if s == "0.5":
        s = "\\frac{1}{2}"
    if re.fullmatch(r"-?\d+/\d+", s):
        a, b = s.split("/")
        s = f"\\frac{{{a}}}{{{b}}}"
    return s


def _as_number(text: str) -> float | None:
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None


def math_equal(prediction: str | None, reference: str | None) -> bool:
    """Whether two MATH answers agree after normalisation (or as numbers, within 1e-4 relative)."""
    if prediction is None or reference is None:
        return False
    a, b = normalize_math(prediction), normalize_math(reference)
    if a == b:
        return True
    x, y = _as_number(a), _as_number(b)
    return x is not None and y is not None and abs(x - y) <= 1e-4 * max(1.0, abs(y))


def extract(kind: str, text: str) -> str:
    """The prediction of answer kind `kind` read from a generation, as a string ("" when none)."""
    if kind in CHOICES:
        return choice(kind, text)
    if kind == "number":
        value = last_number(text)
        return "" if value is None else f"{value:g}"
    if kind == "boxed":
        return math_prediction(text) or ""
    raise ValueError(f"Unknown answer kind {kind!r}; known: {', '.join([*CHOICES, 'number', 'boxed'])}.")


def is_correct(kind: str, generation: str, label: str) -> bool:
    """Whether `generation` answers `label` (the test file's `answer` field)."""
    if kind in CHOICES:
        return choice(kind, generation) == label.strip()
    if kind == "number":
        value, reference = last_number(generation), _as_number(str(label).strip())
        return value is not None and reference is not None and abs(value - reference) <= 1e-3
    if kind == "boxed":
        return math_equal(math_prediction(generation), str(label))
    raise ValueError(f"Unknown answer kind {kind!r}; known: {', '.join([*CHOICES, 'number', 'boxed'])}.")


def derive_answer(rule: str, output: str) -> str | None:
    """The reference answer of a training/test output without an `answer` field ("metamath": after
    "The answer is: ", "gsm8k": after "#### " without thousands commas, "boxed": the last \\boxed{})."""
    if rule == "metamath":
        after = _after_answer_is(output)
        return after.strip() if after is not None else None
    if rule == "gsm8k":
        return output.rsplit("####", 1)[1].strip().replace(",", "") if "####" in output else None
    if rule == "boxed":
        return last_boxed(output)
    raise ValueError(f"Unknown answer rule {rule!r}.")
