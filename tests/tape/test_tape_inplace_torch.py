"""Random programs with in-place writes: the tape against PyTorch (float64) and NumPy.

Each seeded program runs three ways: on the tape, in PyTorch (autograd, whose version counters
raise where a saved value was overwritten) and in plain NumPy (the forward value every framework
must reproduce, and central finite differences for the gradient where PyTorch refuses). The tape
may raise (a refusal), but it may never return a forward value other than NumPy's, nor a
gradient other than the true one: no silently stale number.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import toolkit.tape as tp
from toolkit.tape import numpy as tnp

torch = pytest.importorskip("torch")

INSIDE_PROGRAMS = 400
OUTSIDE_PROGRAMS = 300


class _NumPy:
    """Plain NumPy: the semantics every framework must reproduce."""

    tanh, exp, sum = staticmethod(np.tanh), staticmethod(np.exp), staticmethod(np.sum)

    @staticmethod
    def zeros(shape: tuple[int, ...]) -> np.ndarray:
        return np.zeros(shape)

    @staticmethod
    def index(a: np.ndarray) -> np.ndarray:
        return a


class _Torch:
    tanh, exp, sum = staticmethod(torch.tanh), staticmethod(torch.exp), staticmethod(torch.sum)

    @staticmethod
    def zeros(shape: tuple[int, ...]) -> Any:
        return torch.zeros(shape, dtype=torch.float64)

    @staticmethod
    def index(a: np.ndarray) -> Any:
        return torch.as_tensor(a)


class _Tape:
    tanh, exp, sum = staticmethod(tnp.tanh), staticmethod(tnp.exp), staticmethod(tnp.sum)

    @staticmethod
    def zeros(shape: tuple[int, ...]) -> tp.Array:
        return tnp.zeros(shape)

    @staticmethod
    def index(a: np.ndarray) -> tp.Array:
        return tp.array(a)  # a tape index array


def _inside_program(seed: int) -> Callable[[Any, Any, Any], Any]:
    """A random loss of params ``a`` (4,) and ``b`` (3, 4) that writes to its intermediates."""
    rng = np.random.default_rng(seed)
    start = int(rng.integers(4))
    writes = []
    for _ in range(int(rng.integers(1, 4))):
        target = int(rng.integers(5))
        shape = [(3, 4), (4,), (3, 2), (4, 3), (4,)][target]
        kind = ["whole", "slice", "ints", "mask"][int(rng.integers(4))]
        if kind == "ints":
            picks = rng.permutation(shape[0])[: int(rng.integers(1, shape[0] + 1))]
        else:
            picks = rng.random(shape) < 0.5 if kind == "mask" else None
        op = ["set", "add", "sub", "mul", "div"][int(rng.integers(5))]
        value = ["scalar", "p0", "prow", "inter"][int(rng.integers(4))]
        index = {"whole": ..., "slice": slice(0, 2)}.get(kind, picks)
        written = np.zeros(shape)[index].shape
        if kind == "mask" or not written:
            value = "p0" if value in ("prow", "inter") else value  # one value for all
        writes.append((target, kind, picks, op, value, written[-1] if written else 0))
    tail = int(rng.integers(3))

    def program(ns: Any, a: Any, b: Any) -> Any:
        if start == 0:
            h = b * a
        elif start == 1:
            h = ns.exp(b * 0.5)  # exp's VJP reads its result: PyTorch refuses a later write
        elif start == 2:
            h = ns.zeros((3, 4))
            h[...] = b
        else:
            h = ns.tanh(b) + 0.5
        pre = h[1]  # a view made before the writes: it must see them
        for target, kind, picks, op, value, width in writes:

            dest = [h, h[1], h[:, 1:3], h.T, pre][target]
            index = {"whole": ..., "slice": slice(0, 2),
                     "ints": None if picks is None else ns.index(picks),
                     "mask": None if picks is None else ns.index(picks)}[kind]
            if value == "scalar":
                v: Any = 1.7
            elif value == "p0":
                v = a[1] * 0.2 + 1.3
            elif value == "prow":
                v = a[:width] * 0.2 + 1.3
            else:
                v = ns.tanh(a[:width]) * 0.1 + 1.2
            if op == "set":
                dest[index] = v
            elif op == "add":
                dest[index] += v
            elif op == "sub":
                dest[index] -= v
            elif op == "mul":
                dest[index] *= v
            else:
                dest[index] /= v
        loss = ns.sum(h * h) + ns.sum(pre * a)
        if tail == 1:
            loss = loss + ns.sum(ns.tanh(h.T) * 0.5)
        elif tail == 2:
            loss = loss * 0.5 + ns.sum(pre)
        return loss

    return program


def _finite_differences(f: Callable[[np.ndarray, np.ndarray], float], a: np.ndarray,
                        b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    grads = []
    for k in range(2):
        base = [a, b][k]
        g = np.zeros_like(base)
        for i in np.ndindex(base.shape):
            plus, minus = base.copy(), base.copy()
            plus[i] += 1e-6
            minus[i] -= 1e-6
            args = [(plus, b), (minus, b)] if k == 0 else [(a, plus), (a, minus)]
            g[i] = (f(*args[0]) - f(*args[1])) / 2e-6
        grads.append(g)
    return grads[0], grads[1]


def _run_torch(program: Callable[..., Any], a: np.ndarray, b: np.ndarray) -> Any:
    ta = torch.tensor(a, requires_grad=True)
    tb = torch.tensor(b, requires_grad=True)
    try:
        loss = program(_Torch, ta, tb)
    except Exception:  # a refusal is an outcome
        return "forward error"
    try:
        loss.backward()
    except RuntimeError:
        return float(loss.detach()), "backward error"
    return float(loss.detach()), (ta.grad.numpy(), tb.grad.numpy())


def _numpy_value(program: Callable[..., Any], a: np.ndarray, b: np.ndarray) -> float:
    return float(program(_NumPy, a.copy(), b.copy()))


def _check_inside(seed: int) -> str:
    """Runs inside-program ``seed`` on all three; asserts the tape's numbers; names the case."""
    rng = np.random.default_rng(10_000 + seed)
    a, b = rng.uniform(-1, 1, 4), rng.uniform(-1, 1, (3, 4))
    program = _inside_program(seed)
    expected = _numpy_value(program, a, b)
    ta, tb = tp.array(a), tp.array(b)
    try:
        value, gs = tp.withgradient(lambda: program(_Tape, ta, tb), tp.Params([ta, tb]))
    except (RuntimeError, ValueError, NotImplementedError) as e:
        return f"tape refused: {type(e).__name__}"
    assert float(value) == pytest.approx(expected, rel=1e-12, abs=1e-12), seed
    reference = _run_torch(program, a, b)
    if reference == "forward error" or reference[1] == "backward error":
        case = "PyTorch refused, tape checked against finite differences"
        want = _finite_differences(lambda x, y: _numpy_value(program, x, y), a, b)
        rtol = 1e-5
    else:
        assert reference[0] == pytest.approx(expected, rel=1e-12), seed
        case, want, rtol = "both differentiated, tape equals PyTorch", reference[1], 1e-10
    for got, w in zip((gs[ta], gs[tb]), want, strict=True):
        np.testing.assert_allclose(got, w, rtol=rtol, atol=1e-7, err_msg=str(seed))
    return case


def test_writes_inside_the_function_match_numpy_and_pytorch() -> None:
    outcomes = Counter(_check_inside(seed) for seed in range(INSIDE_PROGRAMS))
    print(dict(outcomes))
    # Every program is differentiated (none refused), about a quarter where PyTorch refuses.
    assert not any(k.startswith("tape refused") for k in outcomes), outcomes
    assert outcomes["PyTorch refused, tape checked against finite differences"] > 0


# --- writes between the forward and the backward pass -----------------------------------------

_TERMS = ("kept", "const", "index", "view", "made", "einsum")
_TARGETS = ("a", "b", "view", "const", "index", "made", "kept", "einsum_source")


def _outside_setup(seed: int) -> tuple[tuple[str, ...], str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(20_000 + seed)
    terms = tuple(t for t in _TERMS if rng.random() < 0.5)
    target = _TARGETS[int(rng.integers(len(_TARGETS)))]
    values = {"a": rng.uniform(-1, 1, 4), "b": rng.uniform(-1, 1, (3, 4)),
              "c": rng.uniform(-1, 1, (3, 4)), "w": rng.uniform(-1, 1, 4),
              "idx": rng.permutation(3)[:2]}
    return terms, target, values


def _outside_loss(ns: Any, terms: tuple[str, ...], arrs: dict[str, Any], kept: list[Any]) -> Any:
    a, b = arrs["a"], arrs["b"]
    h = ns.tanh(b * a)
    kept.append(h)
    loss = ns.sum(a * a)
    if "kept" in terms:
        loss = loss + ns.sum(h * h)
    if "const" in terms:
        loss = loss + ns.sum(b * arrs["c"])
    if "index" in terms:
        loss = loss + ns.sum(b[arrs["idx"]] ** 2)
    if "view" in terms:
        loss = loss + ns.sum(arrs["view"] * arrs["view"] * a[:2])
    if "made" in terms:
        loss = loss + ns.sum(arrs["made"] * a)
    if "einsum" in terms:
        loss = loss + ns.sum(arrs["einsum"] * arrs["einsum"])
    return loss


def _outside_arrays(values: dict[str, np.ndarray], torch_side: bool) -> dict[str, Any]:
    if torch_side:
        arrs = {k: torch.tensor(v, requires_grad=k in ("a", "b")) for k, v in values.items()}
        arrs["made"] = arrs["w"] * 1.0
        arrs["einsum"] = torch.einsum("i->i", arrs["w"])
    else:
        arrs = {k: tp.array(v) for k, v in values.items()}
        arrs["made"] = arrs["w"] * 1.0
        arrs["einsum"] = tnp.einsum("i->i", arrs["w"])
    arrs["view"] = arrs["a"][0:2]
    return arrs


def _write_outside(target: str, arrs: dict[str, Any], kept: list[Any]) -> None:
    if target in ("a", "b", "const", "made"):
        arrs[{"const": "c"}.get(target, target)][...] = 0.25
    elif target == "view":
        arrs["view"][...] = 2.0
    elif target == "index":
        arrs["idx"][0] = 2 if int(arrs["idx"][0]) != 2 else 0
    elif target == "kept":
        kept[0][0] = 5.0
    else:
        arrs["w"][...] = -3.0  # the memory einsum's result views


def _torch_outside(terms: tuple[str, ...], target: str, values: dict[str, np.ndarray],
                   write: bool) -> Any:
    arrs, kept = _outside_arrays(values, torch_side=True), []
    loss = _outside_loss(torch, terms, arrs, kept)
    if write:
        with torch.no_grad():
            _write_outside(target, arrs, kept)
    try:
        loss.backward()
    except RuntimeError:
        return "error"
    return tuple(np.zeros(values[k].shape) if arrs[k].grad is None else arrs[k].grad.numpy()
                 for k in ("a", "b"))


def _check_outside(seed: int) -> str:
    """Runs outside-program ``seed``; asserts the tape raised or was exact; names the case."""
    terms, target, values = _outside_setup(seed)
    arrs, kept = _outside_arrays(values, torch_side=False), []
    # alias="storage": the view of ``a`` made outside is ``a``'s memory, as in PyTorch.
    value, back = tp.pullback(lambda: _outside_loss(tnp, terms, arrs, kept),
                              tp.Params([arrs["a"], arrs["b"]]), alias="storage")
    np_arrs = {k: v.copy() for k, v in values.items()}
    np_arrs["made"], np_arrs["einsum"], np_arrs["view"] = (
        np_arrs["w"] * 1.0, np.einsum("i->i", np_arrs["w"]), np_arrs["a"][0:2])
    assert float(value) == pytest.approx(
        float(_outside_loss(_NumPy, terms, np_arrs, [])), rel=1e-12), seed
    _write_outside(target, arrs, kept)
    torch_after = _torch_outside(terms, target, values, write=True)
    try:
        gs = back()
    except RuntimeError:
        return f"tape raised, PyTorch {'raised' if torch_after == 'error' else 'not'}"
    # No error: the gradient must be the one at the forward pass's values.
    reference = _torch_outside(terms, target, values, write=False)
    for k, want in zip("ab", reference, strict=True):
        got = gs[arrs[k]]
        np.testing.assert_allclose(np.zeros_like(want) if got is None else got, want,
                                   rtol=1e-10, err_msg=str(seed))
    return f"tape exact, PyTorch {'raised' if torch_after == 'error' else 'exact'}"


def test_writes_before_the_backward_pass_raise_or_leave_the_gradient_exact() -> None:
    outcomes = Counter(_check_outside(seed) for seed in range(OUTSIDE_PROGRAMS))
    print(dict(outcomes))
    assert outcomes["tape raised, PyTorch raised"] > 0
