"""Randomized differential test of the tape against PyTorch, over views made outside the function.

Each seeded program builds float64 params, makes views of them (and views of those views)
*outside* the differentiated function (transposes, slices, integer element picks, reshapes,
including ones that must copy, ``adjoint``, ``expand_dims``), lists several of them in
``Params`` and computes a scalar loss from a random chain of elementwise ops, reductions and
matmuls over the views and their parents. The same program runs in PyTorch:

* ``alias="storage"`` against PyTorch's gradient of each *memory*: one leaf per storage, every
  view made from it with torch's own view ops, so ``leaf.grad`` is the total derivative w.r.t.
  that memory and a param's expected gradient is ``leaf.grad`` seen through the param's view.
  A reshape that must copy gives new memory in both libraries (checked to agree): that memory
  is its own leaf, since the program was handed a separate array.
* ``alias="identity"`` against per-object leaves: in PyTorch a view made outside with
  ``.detach().requires_grad_()`` is an independent leaf, which is Zygote's rule for views made
  outside the function.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

import toolkit.tape as tp
from toolkit.tape import numpy as tnp

torch = pytest.importorskip("torch")

PROGRAMS = 300
SHAPES = [(3, 4), (4, 3), (4,), (2, 3, 4), (6,), (1, 4)]

Shape = tuple[int, ...]
# A view step: (applies to a shape, the tape's op, torch's op).
Step = tuple[Callable[[Shape], bool], Callable[[Any], Any], Callable[[Any], Any]]


def _reverse_axes(t: Any) -> Any:
    return t.permute(*reversed(range(t.ndim)))


VIEW_STEPS: dict[str, Step] = {
    "T": (lambda s: len(s) >= 2, lambda a: a.T, _reverse_axes),
    "swap01": (lambda s: len(s) == 3, lambda a: a.transpose((1, 0, 2)),
               lambda t: t.permute(1, 0, 2)),
    "tail": (lambda s: len(s) >= 1 and s[0] >= 2, lambda a: a[1:], lambda t: t[1:]),
    "step": (lambda s: len(s) >= 1 and s[0] >= 3, lambda a: a[::2], lambda t: t[::2]),
    "columns": (lambda s: len(s) >= 2 and s[1] >= 2, lambda a: a[:, 1:], lambda t: t[:, 1:]),
    "pick": (lambda s: len(s) >= 1 and s[0] >= 2, lambda a: a[1], lambda t: t[1]),
    "pick2": (lambda s: len(s) >= 2, lambda a: a[-1, 0], lambda t: t[-1, 0]),
    "flat": (lambda s: len(s) >= 1, lambda a: a.reshape(-1), lambda t: t.reshape(-1)),
    "split": (lambda s: len(s) == 1 and s[0] % 2 == 0 and s[0] >= 4,
              lambda a: a.reshape(2, -1), lambda t: t.reshape(2, -1)),
    "merge": (lambda s: len(s) == 3, lambda a: a.reshape(-1, a.shape[-1]),
              lambda t: t.reshape(-1, t.shape[-1])),
    "adjoint": (lambda s: len(s) in (1, 2), tp.adjoint,
                lambda t: t.unsqueeze(0) if t.ndim == 1 else t.T),
    "expand": (lambda s: True, lambda a: tnp.expand_dims(a, 0), lambda t: t.unsqueeze(0)),
}

UNARY: dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {
    "tanh": (tnp.tanh, torch.tanh),
    "sin": (tnp.sin, torch.sin),
    "cos": (tnp.cos, torch.cos),
    "sigmoid": (tnp.sigmoid, torch.sigmoid),
    "exp_tanh": (lambda a: tnp.exp(tnp.tanh(a)), lambda t: torch.exp(torch.tanh(t))),
    "square": (tnp.square, torch.square),
    "cube": (lambda a: a ** 3, lambda t: t ** 3),
    "power0": (lambda a: a ** 0.0 + a, lambda t: t ** 0.0 + t),
    "abs": (tnp.abs, torch.abs),
    "affine": (lambda a: 1.5 * a - 0.25, lambda t: 1.5 * t - 0.25),
    "negate": (lambda a: -a, lambda t: -t),
}

REDUCTIONS = {
    "sum": (tnp.sum, lambda t, axis: t.sum() if axis is None else t.sum(dim=axis)),
    "mean": (tnp.mean, lambda t, axis: t.mean() if axis is None else t.mean(dim=axis)),
    "max": (tnp.max, lambda t, axis: torch.amax(t) if axis is None else torch.amax(t, dim=axis)),
}


@dataclass
class Memory:
    """One storage: the tape array that owns it and its torch leaf's starting values."""

    owner: tp.Array
    values: np.ndarray


@dataclass
class Obj:
    """An array the program can read: which memory it views, and the torch view path to it."""

    tape: tp.Array
    memory: int
    path: list[Callable[[Any], Any]] = field(default_factory=list)

    def view_of(self, t: Any) -> Any:
        for step in self.path:
            t = step(t)
        return t


@dataclass
class Term:
    """``weight * reduce(binary(unary...(operand), other))``."""

    operand: int
    unary: list[str]
    binary: tuple[str, Any] | None
    reduction: str
    axis: int | None
    weight: float


@dataclass
class Program:
    memories: list[Memory]
    objs: list[Obj]
    params: list[int]
    terms: list[Term]
    stats: dict[str, int]


def _make_views(rng: np.random.Generator, memories: list[Memory], objs: list[Obj],
                stats: dict[str, int]) -> None:
    """Views (and views of views) made outside the function, mirrored by torch view paths."""
    for _ in range(int(rng.integers(1, 6))):
        src = objs[int(rng.integers(len(objs)))]
        obj = src
        for _ in range(int(rng.integers(1, 3))):
            names = [n for n, (ok, _, _) in VIEW_STEPS.items() if ok(obj.tape.shape)]
            name = names[int(rng.integers(len(names)))]
            _, tape_step, torch_step = VIEW_STEPS[name]
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                made = tape_step(obj.tape)
            warned = any(issubclass(w.category, tp.AliasWarning) for w in caught)
            copied = made.base is not obj.tape.base
            # Torch decides view-or-copy on its own; both libraries must agree.
            root = torch.from_numpy(memories[obj.memory].values)
            torch_made = torch_step(obj.view_of(root))
            torch_copied = (torch_made.untyped_storage().data_ptr()
                            != root.untyped_storage().data_ptr())
            assert copied == torch_copied == warned, (name, obj.tape.shape, copied,
                                                      torch_copied, warned)
            if copied:
                stats["copies"] += 1
                memories.append(Memory(made, made.numpy()))
                obj = Obj(made, len(memories) - 1)
            else:
                obj = Obj(made, obj.memory, [*obj.path, torch_step])
            stats[name] += 1
        objs.append(obj)


def _binary_for(rng: np.random.Generator, objs: list[Obj], a: Shape) -> tuple[str, Any] | None:
    """A random binary op whose other operand (an object or a constant) fits shape ``a``."""
    choices: list[tuple[str, Any]] = []
    for j, o in enumerate(objs):
        b = o.tape.shape
        if b == a:
            choices += [("multiply", j), ("add", j), ("subtract", j), ("maximum", j),
                        ("divide", j)]
        if len(a) == 2 and b == a[::-1]:
            choices.append(("times_transpose", j))
        if len(a) == 2 and len(b) in (1, 2) and b[0] == a[1]:
            choices.append(("matmul", j))
        if b == ():
            choices.append(("scale", j))
        if len(a) >= 1 and b == a[-1:]:
            choices.append(("add_row", j))
    choices.append(("constant", rng.standard_normal(a)))
    if rng.random() < 0.25:
        return None
    return choices[int(rng.integers(len(choices)))]


def make_program(seed: int) -> Program:
    rng = np.random.default_rng(seed)
    stats: dict[str, int] = dict.fromkeys([*VIEW_STEPS, "copies"], 0)
    memories: list[Memory] = []
    objs: list[Obj] = []
    for _ in range(int(rng.integers(1, 4))):
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        owner = tp.array(rng.standard_normal(shape))
        memories.append(Memory(owner, owner.numpy()))
        objs.append(Obj(owner, len(memories) - 1))
    _make_views(rng, memories, objs, stats)
    count = int(rng.integers(1, min(len(objs), 4) + 1))
    params = [int(i) for i in rng.choice(len(objs), size=count, replace=False)]
    terms = []
    for _ in range(int(rng.integers(1, 5))):
        operand = int(rng.integers(len(objs)))
        unary = [str(u) for u in rng.choice(sorted(UNARY), size=int(rng.integers(0, 3)))]
        shape = objs[operand].tape.shape
        binary = _binary_for(rng, objs, shape)
        reduction = str(rng.choice(sorted(REDUCTIONS)))
        axis = None if not shape or rng.random() < 0.5 else int(rng.choice([0, -1]))
        terms.append(Term(operand, unary, binary, reduction, axis, float(rng.normal())))
    return Program(memories, objs, params, terms, stats)


def _tape_binary(name: str, a: Any, b: Any) -> Any:
    return {
        "multiply": lambda: a * b, "add": lambda: a + b, "subtract": lambda: a - b,
        "maximum": lambda: tnp.maximum(a, b), "divide": lambda: a / (b * b + 1.0),
        "times_transpose": lambda: a * b.T, "matmul": lambda: a @ b, "scale": lambda: a * b,
        "add_row": lambda: a + b, "constant": lambda: a * b,
    }[name]()


def _torch_binary(name: str, a: Any, b: Any) -> Any:
    return {
        "multiply": lambda: a * b, "add": lambda: a + b, "subtract": lambda: a - b,
        "maximum": lambda: torch.maximum(a, b), "divide": lambda: a / (b * b + 1.0),
        "times_transpose": lambda: a * b.T, "matmul": lambda: a @ b, "scale": lambda: a * b,
        "add_row": lambda: a + b, "constant": lambda: a * torch.from_numpy(np.asarray(b)),
    }[name]()


def tape_loss(prog: Program) -> tp.Array:
    total = 0.0
    for term in prog.terms:
        h = prog.objs[term.operand].tape
        for u in term.unary:
            h = UNARY[u][0](h)
        if term.binary is not None:
            name, other = term.binary
            h = _tape_binary(name, h, other if name == "constant" else prog.objs[other].tape)
        reduced = REDUCTIONS[term.reduction][0](h, axis=term.axis)
        total = total + term.weight * tnp.sum(reduced)
    return total


def torch_loss(prog: Program, tensors: list[Any]) -> Any:
    total = torch.zeros((), dtype=torch.float64)
    for term in prog.terms:
        h = tensors[term.operand]
        for u in term.unary:
            h = UNARY[u][1](h)
        if term.binary is not None:
            name, other = term.binary
            h = _torch_binary(name, h, other if name == "constant" else tensors[other])
        total = total + term.weight * REDUCTIONS[term.reduction][1](h, term.axis).sum()
    return total


def _as_array(g: Any, shape: Shape) -> np.ndarray:
    return np.zeros(shape) if g is None else np.asarray(g)


def check_program(seed: int) -> list[str]:
    """Runs one program under both policies; returns a line per mismatch with PyTorch."""
    prog = make_program(seed)
    ps = tp.Params([prog.objs[i].tape for i in prog.params])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tp.AliasWarning)  # several views of one memory
        value, storage = tp.withgradient(lambda: tape_loss(prog), ps, alias="storage")
    identity = tp.gradient(lambda: tape_loss(prog), ps)
    problems = []

    # Storage: one torch leaf per memory; the objects are torch views of it.
    leaves = [torch.tensor(m.values, requires_grad=True) for m in prog.memories]
    loss = torch_loss(prog, [o.view_of(leaves[o.memory]) for o in prog.objs])
    loss.backward()
    if not np.allclose(value, loss.item(), rtol=1e-12, atol=1e-12):
        problems.append(f"seed {seed}: loss {value} != torch {loss.item()}")
    for i in prog.params:
        obj = prog.objs[i]
        leaf = leaves[obj.memory]
        total = torch.zeros_like(leaf) if leaf.grad is None else leaf.grad
        expected = obj.view_of(total).numpy()
        got = _as_array(storage[obj.tape], obj.tape.shape)
        if got.shape != expected.shape or not np.allclose(got, expected, rtol=1e-10,
                                                          atol=1e-12):
            problems.append(f"seed {seed}: storage gradient of object {i} {got} != {expected}")

    # Identity: every object made outside is its own leaf.
    own = [torch.tensor(o.tape.numpy(), requires_grad=True) for o in prog.objs]
    torch_loss(prog, own).backward()
    for i in prog.params:
        obj = prog.objs[i]
        expected = _as_array(None if own[i].grad is None else own[i].grad.numpy(),
                             obj.tape.shape)
        got = _as_array(identity[obj.tape], obj.tape.shape)
        if got.shape != expected.shape or not np.allclose(got, expected, rtol=1e-10,
                                                          atol=1e-12):
            problems.append(f"seed {seed}: identity gradient of object {i} {got} != {expected}")
    return problems


def test_random_programs_over_views_made_outside_match_torch() -> None:
    mismatches: list[str] = []
    stats: dict[str, int] = {}
    for seed in range(PROGRAMS):
        mismatches += check_program(seed)
        for k, n in make_program(seed).stats.items():
            stats[k] = stats.get(k, 0) + n
    assert not mismatches, f"{len(mismatches)} mismatches in {PROGRAMS} programs:\n" + "\n".join(
        mismatches[:20])
    # The programs exercise every kind of view, element picks and copying reshapes included.
    assert all(stats[name] > 0 for name in VIEW_STEPS), stats
    assert stats["copies"] >= 10, stats


def test_a_program_with_a_copying_reshape_and_element_picks() -> None:
    """A fixed program of the generated kind, so a failure has a small readable case."""
    w = tp.array(np.arange(6.0).reshape(2, 3) / 4)
    with pytest.warns(tp.AliasWarning):
        flat = w.T.reshape(-1)  # must copy: its own memory
    pick = w.T[2]  # (2,): column 2
    element = w[1, 0]  # 0-d
    ps = tp.Params([w, flat, pick, element])

    def f() -> tp.Array:
        return tnp.sum(tnp.tanh(flat) * 2.0) + tnp.sum(pick * w[:, 0]) + element ** 3

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tp.AliasWarning)
        gs = tp.gradient(f, ps, alias="storage")
    tw = torch.tensor(w.numpy(), requires_grad=True)
    tflat = torch.tensor(flat.numpy(), requires_grad=True)
    (torch.tanh(tflat).sum() * 2.0 + (tw.T[2] * tw[:, 0]).sum() + tw[1, 0] ** 3).backward()
    np.testing.assert_allclose(gs[w], tw.grad.numpy())
    np.testing.assert_allclose(gs[flat], tflat.grad.numpy())
    np.testing.assert_allclose(gs[pick], tw.grad.T[2].numpy())
    np.testing.assert_allclose(gs[element], tw.grad[1, 0].numpy())
