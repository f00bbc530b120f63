"""Sweeps: a config's grid of settings and seeds, run in worker processes, then aggregated.

A config is one point. ``--set key=value`` overrides a key; ``--set key=v1,v2`` and the
config's ``[sweep]`` table make an axis; ``--seeds 0:10`` (or ``[sweep] seed = [...]``) is the
seed axis. The grid is the product of the axes, in a fixed order; ``--shard i/n`` takes every
n-th point from the i-th, so separate machines (a cluster's array jobs) run disjoint parts
that :func:`toolkit.runner.aggregate.aggregate` merges. Every point is parsed and preflighted
before any runs: a bad value exits 2 naming the key, as in the file. Each point's run folder
holds the point's effective config, so ``config.toml`` always agrees with ``summary.json``.

Example:
    >>> from toolkit.runner.config import parse_config_text
    >>> file = parse_config_text('experiment = "aliasing"\\ncases = ["case2"]', name="a.toml")
    >>> grid = plan(file, ["tolerances.rtol=1e-6,1e-8"], "0:2")
    >>> [(p.name, p.raw["seed"]) for p in grid]  # doctest: +NORMALIZE_WHITESPACE
    [('a-tolerances.rtol=1e-06-seed0', 0), ('a-tolerances.rtol=1e-06-seed1', 1),
     ('a-tolerances.rtol=1e-08-seed0', 0), ('a-tolerances.rtol=1e-08-seed1', 1)]
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.errors import ConfigError
from toolkit.runner.config import ConfigFile, parse_table

_KEY = re.compile(r"[A-Za-z_][\w-]*(\[\d+\])*(\.[A-Za-z_][\w-]*(\[\d+\])*)*$")
_PART = re.compile(r"([^.\[\]]+)((?:\[\d+\])*)")


@dataclass(frozen=True)
class Point:
    """One point of a sweep grid.

    Attributes:
        settings: the swept keys and their values here, in axis order (seed excluded).
        seed: the point's seed.
        raw: the effective config table (the ``[sweep]`` table removed).
        name: the run folder's name, e.g. ``tied_autoencoder-train.steps=20-seed3``.
        overrides: the keys given one value (``--set key=v``), the same at every point.
    """

    settings: tuple[tuple[str, Any], ...]
    seed: int
    raw: dict[str, Any]
    name: str
    overrides: tuple[tuple[str, Any], ...] = ()

    @property
    def columns(self) -> dict[str, Any]:
        """Every key set here but the seed: the ``set.`` columns of its tidy tables (so runs
        made with different overrides are never grouped together)."""
        return {**dict(self.overrides), **dict(self.settings)}


def parse_assignment(text: str) -> tuple[str, tuple[Any, ...]]:
    """``key=value`` or ``key=v1,v2``: the key path and its values, read as TOML values
    (``0.01``, ``true``, ``"adam"``; a bare word is a string).

    Example:
        >>> parse_assignment("train.optimizers[0].learning_rate=0.1,0.01")
        ('train.optimizers[0].learning_rate', (0.1, 0.01))
        >>> parse_assignment("dtype=float32")
        ('dtype', ('float32',))
    """
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not _KEY.match(key):
        raise ConfigError(f"--set {text!r}: expected key=value or key=v1,v2 with a key path "
                          "such as seed, train.steps or train.optimizers[0].learning_rate")
    try:
        values = tuple(tomllib.loads(f"v = [{value}]")["v"])
    except tomllib.TOMLDecodeError:
        values = tuple(v.strip() for v in value.split(","))
    if not values or any(v == "" for v in values):
        raise ConfigError(f"--set {key}: no value; e.g. --set {key}=1 or --set {key}=1,2")
    return key, values


def parse_seeds(text: str) -> tuple[int, ...]:
    """``0:10`` (a range, end excluded) or ``0,3,7``.

    Example:
        >>> parse_seeds("0:4"), parse_seeds("3,5")
        ((0, 1, 2, 3), (3, 5))
    """
    try:
        if ":" in text:
            start, stop = (int(x) for x in text.split(":"))
            seeds = tuple(range(start, stop))
        else:
            seeds = tuple(int(x) for x in text.split(","))
    except ValueError:
        seeds = ()
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds {text!r}: expected START:STOP (e.g. 0:10) or distinct "
                          "seeds >= 0 separated by commas (e.g. 0,3,7)")
    return seeds


def parse_shard(text: str) -> tuple[int, int]:
    """``i/n`` with ``1 <= i <= n``.

    Example:
        >>> parse_shard("2/3")
        (2, 3)
    """
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        i, n = 0, 0
    if not 1 <= i <= n:
        raise ConfigError(f"--shard {text!r}: expected i/n with 1 <= i <= n, e.g. 1/4")
    return i, n


def set_key(raw: dict[str, Any], key: str, value: Any, where: str) -> None:
    """Sets ``key`` (``a.b[0].c``) in ``raw``, creating tables; lists must already exist.

    Example:
        >>> raw = {"train": {"optimizers": [{"name": "adam"}]}}
        >>> set_key(raw, "train.optimizers[0].learning_rate", 0.1, "--set")
        >>> raw["train"]["optimizers"][0]
        {'name': 'adam', 'learning_rate': 0.1}
    """
    node: Any = raw
    steps: list[str | int] = []
    for name, indices in _PART.findall(key):
        steps.append(name)
        steps += [int(i) for i in re.findall(r"\d+", indices)]
    for i, step in enumerate(steps[:-1]):
        nxt = steps[i + 1]
        if isinstance(step, int):
            if not isinstance(node, list) or step >= len(node):
                raise ConfigError(f"{where}: {key}: no item [{step}] in the config")
            node = node[step]
        else:
            if not isinstance(node, dict):
                raise ConfigError(f"{where}: {key}: {step!r} is not inside a table")
            node = node.setdefault(step, [] if isinstance(nxt, int) else {})
    last = steps[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or last >= len(node):
            raise ConfigError(f"{where}: {key}: no item [{last}] in the config")
    elif not isinstance(node, dict):
        raise ConfigError(f"{where}: {key}: not inside a table")
    node[last] = value


def _axes(file: ConfigFile, sets: Sequence[str], seeds: str | None) -> tuple[
        dict[str, tuple[Any, ...]], tuple[int, ...]]:
    axes = {k: v for k, v in file.sweep.items() if k != "seed"}
    seed_axis = tuple(file.sweep.get("seed", (file.seed,)))
    for text in sets:
        key, values = parse_assignment(text)
        if key == "seed":
            seed_axis = values
        else:
            axes[key] = values
    if seeds is not None:
        seed_axis = parse_seeds(seeds)
    return axes, seed_axis


def _slug(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return re.sub(r"[^\w.=+-]+", "_", text)


def plan(
    file: ConfigFile, sets: Sequence[str] = (), seeds: str | None = None,
    shard: tuple[int, int] = (1, 1),
) -> list[Point]:
    """The grid of points: ``[sweep]`` and ``--set`` axes × seeds, then this shard's part.

    Raises:
        ConfigError: a malformed ``--set``, ``--seeds`` or key path; two points that would
            be the same run; a shard with no point.
    """
    axes, seed_axis = _axes(file, sets, seeds)
    # A key given one value is an override of every point, not an axis of the grid.
    fixed = {k: v[0] for k, v in axes.items() if len(v) == 1}
    axes = {k: v for k, v in axes.items() if len(v) > 1}
    stem = Path(file.name).stem
    points = []
    for combo in itertools.product(*axes.values(), seed_axis):
        *values, seed = combo
        raw = copy.deepcopy(file.raw)
        raw.pop("sweep", None)
        settings = tuple(zip(axes, values, strict=True))
        for key, value in (*fixed.items(), *settings, ("seed", seed)):
            set_key(raw, key, value, f"{file.name}: --set")
        label = "".join(f"-{k}={_slug(v)}" for k, v in settings)
        points.append(Point(settings, seed, raw, f"{stem}{label}-seed{seed}",
                            tuple(fixed.items())))
    names = [p.name for p in points]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"{file.name}: the grid has the point {twice[0]!r} twice; give each "
                          "axis (and --seeds) distinct values")
    index, count = shard
    if index > len(points):
        raise ConfigError(f"--shard {index}/{count}: the grid has only {len(points)} points, so "
                          f"shard {index} would run none; use at most {len(points)} shards")
    return points[index - 1::count]


def point_file(file: ConfigFile, point: Point) -> ConfigFile:
    """The point's config, parsed exactly as a file (see :func:`reparse`)."""
    return reparse(file, point.raw, {**point.columns, "seed": point.seed})


def reparse(file: ConfigFile, raw: dict[str, Any], changed: Mapping[str, Any]) -> ConfigFile:
    """``raw`` (``file``'s table with ``changed`` keys set) parsed exactly as a file: errors
    name the key and the changes; the result keeps the file's name (what runs are grouped
    by) and its text is ``raw`` written as TOML."""
    overrides = ", ".join(f"{k}={v!r}" for k, v in changed.items())
    parsed = parse_table(raw, toml_text(raw), f"{file.name} (with {overrides})",
                         file.base_dir, file.path)
    return dataclasses.replace(parsed, name=file.name)


def toml_text(raw: Mapping[str, Any]) -> str:
    """TOML for a parsed config table: what each point's run folder keeps as config.toml.

    Example:
        >>> print(toml_text({"seed": 1, "train": {"optimizers": [{"name": "sgd"}]}}), end="")
        seed = 1
        <BLANKLINE>
        [train]
        optimizers = [{ name = "sgd" }]
    """
    scalars = {k: v for k, v in raw.items() if not isinstance(v, dict)}
    lines = [f"{_toml_key(k)} = {toml_value(v)}" for k, v in scalars.items()]
    for key, table in raw.items():
        if isinstance(table, dict):
            lines += _toml_table(_toml_key(key), table)
    return "\n".join(lines) + "\n"


def _toml_table(name: str, table: Mapping[str, Any]) -> list[str]:
    lines = ["", f"[{name}]"]
    lines += [f"{_toml_key(k)} = {toml_value(v)}" for k, v in table.items()
              if not isinstance(v, dict)]
    for key, sub in table.items():
        if isinstance(sub, dict):
            lines += _toml_table(f"{name}.{_toml_key(key)}", sub)
    return lines


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def toml_value(value: Any) -> str:
    """A TOML value's text: strings quoted, lists and inline tables spelled out."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {toml_value(v)}"
                                for k, v in value.items()) + " }"
    return repr(value)


@dataclass(frozen=True)
class PointJob:
    """What a worker process needs to run one point into ``folder/<point name>``.

    ``timing``: keep ``timing.json`` (``False`` when publishing: the files are then a
    function of the config alone).
    """

    file: ConfigFile
    point: Point
    folder: Path
    strategies: tuple[str, ...] | None = None
    timing: bool = True


def run_point(job: PointJob) -> dict[str, Any]:
    """Runs one point (a worker process's job); returns a summary line's data: name, ok,
    failed checks, seconds."""
    from toolkit.runner.preflight import preflight
    from toolkit.runner.run import run_config
    from toolkit.runner.rundir import write_point

    point = job.point
    config = preflight(point_file(job.file, point))
    output = run_config(config, strategies=job.strategies)
    write_point(output, job.folder / point.name, point.columns, timing=job.timing)
    failed = [c.name for c in output.checks if not c.passed]
    return {"name": point.name, "ok": not failed, "failed": failed,
            "seconds": output.timing["total"]}


def _share_cores(threads: int) -> None:
    """A worker's set-up, before it imports jax or numpy's BLAS: SIGINT ignored (the parent
    stops the sweep), and a thread budget of the cores divided among the workers, so that N
    workers do not each start a thread per core (XLA's and BLAS's pools would then fight
    over them)."""
    import os
    import signal

    # Ctrl-C is the parent's to handle: it stops the sweep and removes its staging folder.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen="
                               f"{'true' if threads > 1 else 'false'} "
                               f"intra_op_parallelism_threads={threads}").strip()
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, str(threads))


def run_points(
    jobs: Sequence[PointJob], workers: int, done: Callable[[dict[str, Any]], None],
) -> list[dict[str, Any]]:
    """Runs every job, in ``workers`` processes (spawned: JAX does not survive a fork)."""
    if workers <= 1 or len(jobs) <= 1:
        results = []
        for job in jobs:
            results.append(run_point(job))
            done(results[-1])
        return results
    import multiprocessing
    import os
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    from toolkit.runner.interrupt import checkpoint

    context = multiprocessing.get_context("spawn")
    threads = max(1, (os.cpu_count() or 1) // workers)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context,
                               initializer=_share_cores, initargs=(threads,))
    futures = [pool.submit(run_point, job) for job in jobs]
    try:
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            for future in finished:
                done(future.result())
            checkpoint()  # Ctrl-C reaches the parent only (the workers ignore SIGINT)
    except BaseException:
        for process in list(getattr(pool, "_processes", {}).values()):
            process.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return [f.result() for f in futures]  # in the grid's order, whatever finished first


def run_sweep(
    file: ConfigFile, points: Sequence[Point], out: Path, *, workers: int = 1,
    strategies: tuple[str, ...] | None = None, say: Callable[[str], None] = lambda m: None,
    timing: bool = True, tick: Callable[[int], None] = lambda done: None,
) -> tuple[Path, list[dict[str, Any]]]:
    """Runs ``points`` into a new sweep folder under ``out`` and aggregates them.

    The sweep folder (``<config>-sweep-<time>``) holds ``runs/<point>/`` (one run folder per
    point), ``sweep.json`` (the grid), the tidy ``curves.csv`` and ``results.csv`` of every
    point, ``aggregate.csv`` and ``aggregate.md`` (means and 95 % bootstrap CIs across
    seeds) and CI-band plots. It is staged and renamed whole.

    ``say`` gets a line per finished point, ``tick`` the number finished (a progress bar with
    an ETA over the points).

    Returns:
        The sweep folder and, per point, its name, ``ok``, failed checks and seconds.
    """
    from toolkit.runner.aggregate import aggregate
    from toolkit.runner.rundir import StagedRun

    staged = StagedRun(out, f"{Path(file.name).stem}-sweep")
    with staged as tmp:
        (tmp / "sweep.json").write_text(json.dumps({
            "config": file.name,
            "points": [{"name": p.name, "settings": p.columns, "seed": p.seed}
                       for p in points],
        }, indent=2))
        count = itertools.count(1)

        def done(result: dict[str, Any]) -> None:
            finished = next(count)
            tick(finished)
            status = "ok" if result["ok"] else "FAIL"
            say(f"[{finished}/{len(points)}] {status} {result['name']} "
                f"({result['seconds']:.1f} s)")

        jobs = [PointJob(file, p, tmp / "runs", strategies, timing) for p in points]
        results = run_points(jobs, workers, done)
        aggregate(sorted((tmp / "runs").iterdir()), tmp)
    assert staged.final is not None
    return staged.final, results
