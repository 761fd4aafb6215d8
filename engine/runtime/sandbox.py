"""Restricted execution of the Python that product managers write into BPMN models.

Script tasks, gateway conditions, pre/post scripts, timer expressions and service-task parameters all
run through SpiffWorkflow's ``PythonScriptEngine``, whose default environment is plain ``eval``/``exec``:
a model could import ``os``, walk ``().__class__`` to any class, loop forever or allocate gigabytes
inside a web worker. :class:`RestrictedEnvironment` closes those doors:

* RestrictedPython compiles the code with :class:`SandboxPolicy`, which refuses imports, classes and
  ``_`` names and routes every attribute access, loop, call and size-amplifying operator to a guard;
* loops, comprehensions, functions and lambdas call ``_tick_()``, which enforces a per-call deadline
  and iteration budget without signals or threads, so it works in any thread of a WSGI server;
* ``*``, ``**``, ``<<``, ``+``, ``%``, format specs and the size-amplifying methods estimate their
  result and refuse it before it is built.

This is defence in depth for reviewed models, not a boundary for hostile code. Known gaps: a single
builtin call on a large value (``sorted`` of a million items) runs to its end before the deadline is
checked; text built from many references to one big object (``str()`` of ``[big] * 1000``,
``'%s' * n % args``) is not estimated; sandboxed code can catch the sandbox's own exceptions (every
further loop pass, function call or guarded operation raises again, so it cannot keep running).
"""

from __future__ import annotations

import ast
import functools
import math
import operator
import re
from collections.abc import Callable, Sized
from dataclasses import dataclass
from decimal import Decimal
from time import monotonic
from types import CodeType, SimpleNamespace
from typing import Any, Literal, NoReturn

from RestrictedPython import compile_restricted, safe_builtins, utility_builtins
from RestrictedPython.Eval import default_guarded_getitem, default_guarded_getiter
from RestrictedPython.Guards import full_write_guard, guarded_iter_unpack_sequence, guarded_unpack_sequence
from RestrictedPython.PrintCollector import PrintCollector
from RestrictedPython.transformer import INSPECT_ATTRIBUTES, RestrictingNodeTransformer, copy_locations
from SpiffWorkflow.bpmn.script_engine import TaskDataEnvironment

Mode = Literal["eval", "exec"]


class SandboxError(Exception):
    """Base for everything the sandbox refuses or stops."""


class SandboxViolation(SandboxError):
    """The code asked for something the sandbox never allows (imports, ``_`` names, ``open`` ...)."""


class ScriptTimeout(SandboxError):
    """The code ran past its time or loop-iteration budget."""


class ScriptResourceError(SandboxError):
    """The code would have built an oversized value, or ran out of memory or stack."""


@dataclass(frozen=True, slots=True)
class ScriptLimits:
    """Budget of one evaluate/execute call; the defaults leave ample room for credit rules."""

    max_seconds: float = 1.0
    max_iterations: int = 1_000_000
    max_sequence: int = 1_000_000
    max_int_bits: int = 100_000

    def __post_init__(self) -> None:
        if min(self.max_seconds, self.max_iterations, self.max_sequence, self.max_int_bits) <= 0:
            raise ValueError("script limits must be positive")


_TICK = "_tick_"
_SEQUENCES = (str, bytes, list, tuple)
_TEXT = (str, bytes)
_MISSING: Any = object()

# Binary operators that can build huge values, and the guard that replaces each of them.
_BINOP_GUARDS: dict[type[ast.operator], str] = {
    ast.Add: "_add_",
    ast.Mult: "_mul_",
    ast.Pow: "_pow_",
    ast.LShift: "_lshift_",
    ast.Mod: "_mod_",
}

_INPLACE_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "+=": operator.iadd,
    "-=": operator.isub,
    "*=": operator.imul,
    "/=": operator.itruediv,
    "//=": operator.ifloordiv,
    "%=": operator.imod,
    "**=": operator.ipow,
    "<<=": operator.ilshift,
    ">>=": operator.irshift,
    "&=": operator.iand,
    "|=": operator.ior,
    "^=": operator.ixor,
    "@=": operator.imatmul,
}

# A %-format conversion: optional mapping key, flags, then width and precision (digits or '*').
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
_DIGITS = re.compile(r"\d+")
_CONVERSIONS: dict[str, Callable[[Any], str]] = {"s": str, "r": repr, "a": ascii}

# Builtins that RestrictedPython offers but a credit process must not have: classes (no metaclass is
# provided anyway), exceptions that escape `except Exception` in the web worker, nondeterminism, and
# string.Template, whose substitution multiplies sizes unchecked.
_DROPPED_BUILTINS = frozenset(
    {"__build_class__", "BaseException", "GeneratorExit", "KeyboardInterrupt", "SystemExit"}
    | {"random", "whrandom", "string"}
)
# Well-known dangerous builtins that are absent; a NameError on one of them is reported as refused.
_FORBIDDEN_NAMES = frozenset(
    {"open", "eval", "exec", "compile", "type", "vars", "globals", "locals", "dir", "input"}
    | {"breakpoint", "object", "super", "memoryview", "bytearray"}
)
# math without factorial/comb/perm/prod/lcm, whose results grow without bound.
_MATH_NAMES = (
    "ceil", "floor", "trunc", "sqrt", "isqrt", "exp", "log", "log2", "log10", "pow", "fabs", "fsum",
    "fmod", "copysign", "hypot", "gcd", "isclose", "isfinite", "isinf", "isnan", "pi", "e", "tau", "inf",
    "nan",
)  # fmt: skip


def _is_literal(node: ast.expr, kinds: tuple[type, ...]) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, kinds)


def _needs_guard(node: ast.BinOp) -> bool:
    """Leave an operator unguarded where a numeric literal rules out repetition and integer growth.

    ``amount * 0.05`` or ``count + 1`` are the common case and stay as cheap as plain Python.
    """
    left, right = node.left, node.right
    if isinstance(node.op, ast.Add):
        return not (_is_literal(left, (int, float, complex)) or _is_literal(right, (int, float, complex)))
    if isinstance(node.op, (ast.Mult, ast.Pow)):
        return not (_is_literal(left, (float, complex)) or _is_literal(right, (float, complex)))
    if isinstance(node.op, ast.Mod):
        return not _is_literal(left, (int, float, complex))
    return True


def _tick_call(location: ast.AST) -> ast.Call:
    call = ast.Call(func=ast.Name(_TICK, ast.Load()), args=[], keywords=[])
    copy_locations(call, location)
    return call


def _tick_statement(location: ast.stmt) -> ast.Expr:
    statement = ast.Expr(value=_tick_call(location))
    copy_locations(statement, location)
    return statement


class SandboxPolicy(RestrictingNodeTransformer):
    """RestrictedPython's policy plus the rewrites that let the runtime guards enforce the limits."""

    def warn(self, node: ast.AST, info: str) -> None:
        """Drop the print() notes: BPMN scripts print for debugging and never read ``printed``, so
        every new script would otherwise raise a SyntaxWarning."""
        if "printed" not in info:
            super().warn(node, info)

    def visit_Import(self, node: ast.Import) -> None:
        self.error(node, "import statements are not allowed")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        self.error(node, "import statements are not allowed")

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.error(node, "class definitions are not allowed")

    def visit_While(self, node: ast.While) -> ast.AST:
        node = super().visit_While(node)
        node.body.insert(0, _tick_statement(node))
        return node

    def visit_For(self, node: ast.For) -> ast.AST:
        node = super().visit_For(node)
        node.body.insert(0, _tick_statement(node))
        return node

    def visit_comprehension(self, node: ast.comprehension) -> ast.AST:
        """Every generator clause gets ``if _tick_()`` first (the tick returns True)."""
        node = super().visit_comprehension(node)
        node.ifs.insert(0, _tick_call(node.iter))
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        """Ticking on entry bounds recursion that never loops, e.g. ``f(n-1) + f(n-1)``."""
        node = super().visit_FunctionDef(node)
        node.body.insert(0, _tick_statement(node))
        return node

    def visit_Lambda(self, node: ast.Lambda) -> ast.AST:
        """``lambda: body`` becomes ``lambda: _tick_() and body``."""
        node = super().visit_Lambda(node)
        body = ast.BoolOp(op=ast.And(), values=[_tick_call(node.body), node.body])
        copy_locations(body, node.body)
        node.body = body
        return node

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        node = super().visit_BinOp(node)
        guard = _BINOP_GUARDS.get(type(node.op))
        if guard is None or not _needs_guard(node):
            return node
        call = ast.Call(func=ast.Name(guard, ast.Load()), args=[node.left, node.right], keywords=[])
        copy_locations(call, node)
        return call

    def visit_FormattedValue(self, node: ast.FormattedValue) -> ast.AST:
        """``f'{v!r:spec}'`` becomes ``f'{_format_(v, "r", spec)}'`` so the spec's widths are checked."""
        node = super().visit_FormattedValue(node)
        if node.format_spec is None:
            return node
        conversion = chr(node.conversion) if node.conversion != -1 else ""
        call = ast.Call(
            func=ast.Name("_format_", ast.Load()),
            args=[node.value, ast.Constant(conversion), node.format_spec],
            keywords=[],
        )
        copy_locations(call, node.value)
        formatted = ast.FormattedValue(value=call, conversion=-1, format_spec=None)
        copy_locations(formatted, node)
        return formatted


class _LimitedPrintCollector(PrintCollector):
    """Collects print() output (BPMN scripts discard it) but refuses to hoard more than the limit."""

    def __init__(self, _getattr_: Callable[..., Any] | None = None, *, limit: int) -> None:
        super().__init__(_getattr_)
        self.limit = limit
        self.size = 0

    def write(self, text: str) -> None:
        self.size += len(text)
        if self.size > self.limit:
            raise ScriptResourceError(f"print() output exceeds the limit of {self.limit} characters")
        super().write(text)


class _IntType:
    """Stands in for ``int``: isinstance/issubclass behave as with the real type, while a call refuses
    huge Decimals, because ``int(Decimal('1e999999'))`` runs for minutes inside C, out of the
    deadline's reach (and a form field can carry exactly that string)."""

    def __init__(self, check_decimal: Callable[[Any], Any]) -> None:
        self.check_decimal = check_decimal

    def __call__(self, *args: Any, **kwargs: Any) -> int:
        if args:
            self.check_decimal(args[0])
        return int(*args, **kwargs)

    def __instancecheck__(self, instance: Any) -> bool:
        return isinstance(instance, int)

    def __subclasscheck__(self, subclass: type) -> bool:
        return issubclass(subclass, int)


def _apply(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``f(*args, **kwargs)`` in sandboxed code: RestrictedPython routes star-calls through here."""
    return func(*args, **kwargs)


def _decimal_checked(func: Callable[[Any], Any], check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def call(value: Any) -> Any:
        return func(check(value))

    return call


def _uses_name(code: CodeType, name: str) -> bool:
    """Whether ``code`` or any nested function/comprehension loads ``name``."""
    return name in code.co_names or any(
        isinstance(const, CodeType) and _uses_name(const, name) for const in code.co_consts
    )


def _compile(mode: Mode, source: str) -> CodeType:
    """Compile ``source`` under :class:`SandboxPolicy`; any refusal or syntax error is a SandboxViolation."""
    try:
        # eval() strips surrounding whitespace, which BPMN XML often leaves around expressions.
        return compile_restricted(source.strip() if mode == "eval" else source, "<string>", mode, policy=SandboxPolicy)
    except (SyntaxError, ValueError) as exc:
        errors = exc.args[0] if exc.args and isinstance(exc.args[0], tuple) else (str(exc),)
        raise SandboxViolation("code refused by the sandbox: " + "; ".join(errors)) from exc
    except (RecursionError, MemoryError) as exc:  # "x = 1 +1 +1 …" twenty thousand times
        raise SandboxViolation("code refused by the sandbox: nested too deeply to compile") from exc


def check_source(source: str, mode: Mode) -> str | None:
    """Deploy-time lint: why the sandbox would refuse ``source``, or None.

    Besides compiling, calls to the well-known dangerous builtins are reported here, so a model
    that calls ``open(...)`` is refused at deploy instead of failing its first instance. Plain names
    are not: ``type`` or ``input`` may well be fields of the task data.
    """
    try:
        _compile(mode, source)
    except SandboxViolation as exc:
        return str(exc)
    for node in ast.walk(ast.parse(source, mode=mode)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FORBIDDEN_NAMES:
            return f"name {node.func.id!r} is not allowed"
    return None


def _reraise(exc: MemoryError | RecursionError | NameError) -> NoReturn:
    """Report exhaustion and refused builtins as sandbox errors, keeping the traceback (SpiffWorkflow
    reads the script's line number from it); any other NameError goes on unchanged."""
    if isinstance(exc, NameError):
        if exc.name not in _FORBIDDEN_NAMES:
            raise exc
        error: SandboxError = SandboxViolation(f"name {exc.name!r} is not allowed")
    else:
        what = "memory" if isinstance(exc, MemoryError) else "stack (recursion too deep)"
        error = ScriptResourceError(f"script ran out of {what}")
    raise error.with_traceback(exc.__traceback__) from exc


class _Guards:
    """Runtime checks called by the rewritten code. Stateless per call, so threads can share it."""

    def __init__(self, limits: ScriptLimits) -> None:
        self.max_sequence = limits.max_sequence
        self.max_int_bits = limits.max_int_bits
        self.max_decimal_digits = int(limits.max_int_bits * math.log10(2))
        padding = {name: (_TEXT, self._padding(name)) for name in ("ljust", "rjust", "center", "zfill")}
        self.method_guards: dict[str, tuple[tuple[type, ...], Callable[..., Any]]] = {
            **padding,
            "expandtabs": (_TEXT, self._expandtabs),
            "replace": (_TEXT, self._replace),
            "join": (_TEXT, self._join),
            "translate": ((str,), self._translate),
            "extend": ((list,), self._extend),
            "as_integer_ratio": ((Decimal,), self._as_integer_ratio),
        }
        self.inplace_guards: dict[str, Callable[[Any, Any], Any]] = {
            "+=": self.add,
            "*=": self.mul,
            "**=": self.pow,
            "<<=": self.lshift,
            "%=": self.mod,
        }

    # -- checks ------------------------------------------------------------------------------------

    def oversized(self, what: str, size: int) -> ScriptResourceError:
        return ScriptResourceError(f"result of {what} would have {size} items (limit {self.max_sequence})")

    def check_size(self, what: str, size: int) -> None:
        if size > self.max_sequence:
            raise self.oversized(what, size)

    def check_bits(self, what: str, bits: int) -> None:
        if bits > self.max_int_bits:
            raise ScriptResourceError(f"result of {what} would have at least {bits} bits (limit {self.max_int_bits})")

    def check_width(self, what: str, digits: str) -> None:
        """A width/precision allocates that many characters; digits are compared before int()."""
        digits = digits.lstrip("0")
        if len(digits) > len(str(self.max_sequence)) or int(digits or 0) > self.max_sequence:
            raise ScriptResourceError(f"{what} {digits[:20]} exceeds the limit of {self.max_sequence}")

    def check_decimal(self, value: Any) -> Any:
        """Refuse a Decimal whose int or digit-string form would be huge (quadratic, uninterruptible C)."""
        if isinstance(value, Decimal) and value.is_finite() and abs(value.adjusted()) > self.max_decimal_digits:
            raise ScriptResourceError(
                f"Decimal {value} has too many digits to convert (limit {self.max_decimal_digits})"
            )
        return value

    # -- operators (the names the policy rewrites to) -----------------------------------------------
    # + and * run on almost every arithmetic line: each guard is one frame, comparisons stay inline,
    # and the common numeric case falls through after one or two isinstance calls.

    def add(self, a: Any, b: Any) -> Any:
        if isinstance(a, _SEQUENCES) and isinstance(b, _SEQUENCES) and (size := len(a) + len(b)) > self.max_sequence:
            raise self.oversized("+", size)
        return a + b

    def mul(self, a: Any, b: Any) -> Any:
        if isinstance(a, int):
            if isinstance(b, int):
                if (bits := a.bit_length() + b.bit_length() - 1) > self.max_int_bits:
                    self.check_bits("*", bits)
            elif isinstance(b, _SEQUENCES) and (size := len(b) * a) > self.max_sequence:
                raise self.oversized("*", size)
        elif isinstance(a, _SEQUENCES) and isinstance(b, int) and (size := len(a) * b) > self.max_sequence:
            raise self.oversized("*", size)
        return a * b

    def pow(self, base: Any, exp: Any, mod: None = None) -> Any:
        """``**`` and the ``pow`` builtin; a modulus is refused (its cost is not bounded by the result)."""
        if mod is not None:
            raise SandboxViolation("pow() with a modulus is not allowed")
        if isinstance(base, int) and isinstance(exp, int) and exp > 1 and abs(base) > 1:
            # |base| >= 2, so the result has at least exp bits; only a small exp needs the estimate.
            self.check_bits("**", exp if exp > self.max_int_bits else math.floor(exp * math.log2(abs(base))))
        return base**exp

    def lshift(self, a: Any, b: Any) -> Any:
        if isinstance(a, int) and isinstance(b, int) and a and b > 0:
            self.check_bits("<<", a.bit_length() + b)
        return a << b

    def mod(self, a: Any, b: Any) -> Any:
        """``%``: on a str/bytes template, refuse '*' and oversized widths, and huge Decimal arguments."""
        if isinstance(a, _TEXT):
            text = a.decode("latin-1") if isinstance(a, bytes) else a
            for match in _PERCENT_SPEC.finditer(text):
                for field in match.groups():
                    if field == "*":
                        raise ScriptResourceError("%-formatting with a '*' width or precision is not allowed")
                    if field:
                        self.check_width("%-format width", field)
            for value in b.values() if isinstance(b, dict) else b if isinstance(b, tuple) else (b,):
                self.check_decimal(value)
        return a % b

    def inplace(self, op: str, target: Any, value: Any) -> Any:
        """``name op= value``, which RestrictedPython rewrites to ``_inplacevar_(op, name, value)``.

        Only a list changes in place under a guarded operator (``+=``, ``*=``); for every other type
        ``x op= y`` is ``x = x op y``, so the operator's guard serves as is.
        """
        if isinstance(target, list):
            if op == "+=":
                self._extend(target, value)
                return target
            if op == "*=" and isinstance(value, int):
                self.check_size("*=", len(target) * value)
        elif (guard := self.inplace_guards.get(op)) is not None:
            return guard(target, value)
        return _INPLACE_OPS[op](target, value)

    def format_value(self, value: Any, conversion: str, spec: str) -> str:
        """An f-string field with a format spec, whose widths/precisions are allocated up front."""
        if conversion:
            value = _CONVERSIONS[conversion](value)
        for digits in _DIGITS.findall(spec):
            self.check_width("format width", digits)
        return format(self.check_decimal(value), spec)

    # -- attribute access --------------------------------------------------------------------------

    def attribute(self, obj: Any, name: str, default: Any = _MISSING) -> Any:
        """``obj.name`` and ``getattr()``: safer_getattr's refusals plus guards on amplifying methods."""
        if type(name) is not str:
            raise TypeError("attribute name must be a string")
        if name.startswith("_") or name in INSPECT_ATTRIBUTES:
            raise SandboxViolation(f"attribute {name!r} is not allowed")
        owner = obj if isinstance(obj, type) else type(obj)
        if name in ("format", "format_map") and issubclass(owner, str):
            raise SandboxViolation(f"str.{name}() is not allowed; use an f-string or %-formatting")
        guarded = self.method_guards.get(name)
        if guarded is not None and issubclass(owner, guarded[0]):
            # On the class (str.join) the guard takes self explicitly, like the unbound method.
            return guarded[1] if obj is owner else functools.partial(guarded[1], obj)
        if default is _MISSING:
            return getattr(obj, name)
        return getattr(obj, name, default)

    def _padding(self, method: str) -> Callable[..., Any]:
        def guard(text: Any, width: int, *args: Any) -> Any:
            self.check_size(f"{method}()", width)
            return getattr(text, method)(width, *args)

        return guard

    def _expandtabs(self, text: Any, tabsize: int = 8) -> Any:
        tabs = text.count("\t" if isinstance(text, str) else b"\t")
        self.check_size("expandtabs()", len(text) + tabs * tabsize)
        return text.expandtabs(tabsize)

    def _replace(self, text: Any, old: Any, new: Any, count: int = -1) -> Any:
        hits = text.count(old) if count < 0 else min(text.count(old), count)
        self.check_size("replace()", len(text) + hits * (len(new) - len(old)))
        return text.replace(old, new, count)

    def _join(self, separator: Any, iterable: Any) -> Any:
        items = list(iterable)
        try:
            size = sum(map(len, items))
        except TypeError:  # an item that is not a string: join() itself reports it
            size = 0
        self.check_size("join()", size + len(separator) * max(len(items) - 1, 0))
        return separator.join(items)

    def _translate(self, text: str, table: Any) -> str:
        values = table.values() if isinstance(table, dict) else table
        longest = max((len(value) for value in values if isinstance(value, str)), default=1)
        self.check_size("translate()", len(text) * longest)
        return text.translate(table)

    def _extend(self, target: list[Any], iterable: Any) -> None:
        items = iterable if isinstance(iterable, Sized) else list(iterable)
        self.check_size("extend()", len(target) + len(items))
        target.extend(items)

    def _as_integer_ratio(self, number: Decimal) -> tuple[int, int]:
        return self.check_decimal(number).as_integer_ratio()

    # -- builtins ----------------------------------------------------------------------------------

    def safe_range(self, *args: int) -> range:
        span = range(*args)
        step = span.step
        self.check_size("range()", max(0, (span.stop - span.start + step - (1 if step > 0 else -1)) // step))
        return span

    def safe_sum(self, iterable: Any, /, start: Any = 0) -> Any:
        if isinstance(start, _SEQUENCES):
            raise SandboxViolation("sum() of sequences is not allowed; use a comprehension or join()")
        return sum(iterable, start)

    def safe_round(self, number: Any, ndigits: int | None = None) -> Any:
        if ndigits is None:
            self.check_decimal(number)
        return round(number, ndigits)


class RestrictedEnvironment(TaskDataEnvironment):
    """SpiffWorkflow script environment that compiles with RestrictedPython and enforces ScriptLimits.

    ``extra_globals`` (helpers such as lookup functions) are trusted and exposed as they are; attribute
    access on them still goes through the guard. Task data and helpers are handled by
    ``TaskDataEnvironment`` (globals copied per call, callables stripped after a script,
    ``check_for_overwrite``).
    """

    CACHE_SIZE = 4096

    def __init__(self, extra_globals: dict[str, Any] | None = None, limits: ScriptLimits | None = None) -> None:
        self.limits = limits or ScriptLimits()
        guards = _Guards(self.limits)
        math_namespace = {name: getattr(math, name) for name in _MATH_NAMES}
        for name in ("floor", "ceil", "trunc"):
            math_namespace[name] = _decimal_checked(getattr(math, name), guards.check_decimal)
        # RestrictedPython's limited_builtins (range capped at 1000 items, list/tuple refusing strings)
        # are superseded by the limit-aware range and the plain list/tuple below.
        builtins = {**safe_builtins, **utility_builtins}
        builtins = {name: value for name, value in builtins.items() if name not in _DROPPED_BUILTINS}
        builtins.update(
            sum=guards.safe_sum, min=min, max=max, any=any, all=all, len=len, sorted=sorted,
            enumerate=enumerate, zip=zip, map=map, filter=filter, dict=dict, list=list, tuple=tuple,
            set=set, round=guards.safe_round, abs=abs, int=_IntType(guards.check_decimal), float=float,
            str=str, bool=bool, isinstance=isinstance, Decimal=Decimal, range=guards.safe_range,
            pow=guards.pow, getattr=guards.attribute, math=SimpleNamespace(**math_namespace),
            _getattr_=guards.attribute, _getitem_=default_guarded_getitem,
            _getiter_=default_guarded_getiter, _iter_unpack_sequence_=guarded_iter_unpack_sequence,
            _unpack_sequence_=guarded_unpack_sequence, _write_=full_write_guard,
            _inplacevar_=guards.inplace, _apply_=_apply,
            _print_=functools.partial(_LimitedPrintCollector, limit=self.limits.max_sequence),
            _add_=guards.add, _mul_=guards.mul, _pow_=guards.pow, _lshift_=guards.lshift,
            _mod_=guards.mod, _format_=guards.format_value,
        )  # fmt: skip
        super().__init__({"__builtins__": builtins, **(extra_globals or {})})
        self._compile = functools.lru_cache(maxsize=self.CACHE_SIZE)(self._compile_uncached)

    def evaluate(self, expression: str, context: dict[str, Any], external_context: dict[str, Any] | None = None) -> Any:
        """Evaluate a condition or expression; its budget starts now."""
        code, loops = self._compile("eval", expression)
        if loops:
            external_context = self._with_tick(external_context)
        try:
            return TaskDataEnvironment.evaluate(self, code, context, external_context)
        except (MemoryError, RecursionError, NameError) as exc:
            _reraise(exc)

    def execute(self, script: str, context: dict[str, Any], external_context: dict[str, Any] | None = None) -> bool:
        """Run a script against the task data (``context``); its budget starts now."""
        code, loops = self._compile("exec", script)
        if loops:
            external_context = self._with_tick(external_context)
        try:
            return TaskDataEnvironment.execute(self, code, context, external_context)
        except (MemoryError, RecursionError, NameError) as exc:
            _reraise(exc)

    def cache_info(self) -> tuple[int, int, int | None, int]:
        """(hits, misses, maxsize, currsize) of the compiled-code cache, as functools reports them."""
        return self._compile.cache_info()

    def _compile_uncached(self, mode: Mode, source: str) -> tuple[CodeType, bool]:
        """Compile under the policy; also tell whether the code can loop, i.e. needs a ``_tick_``."""
        code = _compile(mode, source)
        return code, _uses_name(code, _TICK)

    def _with_tick(self, external_context: dict[str, Any] | None) -> dict[str, Any]:
        """Code that loops gets a fresh ``_tick_`` through the external context, which
        TaskDataEnvironment removes from the task data after a script."""
        return {**(external_context or {}), _TICK: self._new_tick()}

    def _new_tick(self) -> Callable[[], bool]:
        """A closure owning this call's deadline and iteration budget, so threads never share one."""
        limits = self.limits
        deadline = monotonic() + limits.max_seconds
        remaining = limits.max_iterations

        def tick() -> bool:
            nonlocal remaining
            remaining -= 1
            if remaining < 0:
                raise ScriptTimeout(f"script exceeded its limit of {limits.max_iterations} loop iterations")
            if monotonic() > deadline:
                raise ScriptTimeout(f"script exceeded its time limit of {limits.max_seconds} s")
            return True

        return tick
