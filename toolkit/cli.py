"""The ``aliasgrad`` command (also ``python -m toolkit``).

Exit codes:
    0: every check passed.
    1: a check failed: a recorded expectation, a must-be-exact strategy, or a training
       trajectory that stopped being finite (the summary and the report name it).
    2: bad input, found before anything is computed or written: a config (the message names
       the file and the key path), an experiment's code (its ``file:line`` and the exception),
       or an ``--out`` folder that cannot be written (read-only, under a file, disk full).
    130: interrupted (Ctrl-C); no partial run folder is kept, earlier runs are untouched.

A closed stdout (``aliasgrad run a.toml b.toml | head -1``) does not stop a run: every config
still runs and is written, and the exit code is the run's.

Example:
    $ aliasgrad run                      # the embedded demo: the aliasing cases + tied autoencoder
    $ aliasgrad run configs/partial_tie.toml --strategies implicit-identity,explicit-shared
    $ aliasgrad run configs/seed.toml --quiet   # only the summary (and errors)
    $ aliasgrad run configs/tied_autoencoder.toml --seeds 0:4 -j 2   # a sweep, with CIs
    $ aliasgrad run configs/tied_autoencoder.toml --set train.steps=50 --seeds 0:8 --shard 1/2
    $ aliasgrad aggregate results/shard1 results/shard2   # merge shards into one report
    $ aliasgrad compare results/run-a results/run-b        # what changed between two runs
    $ aliasgrad list
    $ aliasgrad show latest              # the most recent run folder under --out
    $ aliasgrad publish                  # regenerate results/README.md and results/reference/
    $ aliasgrad --version
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import pkgutil
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

import toolkit
from toolkit.errors import ConfigError, OutputError

DEFAULT_OUT = Path("results")
LATEST = "latest"


def shipped_configs() -> list[Path]:
    """The shipped configs: the repository's ``configs/*.toml``, installed as ``toolkit.configs``.

    The list does not depend on the current directory or on a source checkout.

    Example:
        >>> [p.name for p in shipped_configs()][:2]
        ['partial_tie.toml', 'recurrent.toml']
    """
    folder = resources.files("toolkit.configs")
    return sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith(".toml"))


class Console:
    """Where the command's output goes: the results on stdout, progress on stderr.

    stdout may be a pipe whose reader has gone (``| head``); the first failed write
    points stdout at ``os.devnull`` and the run carries on.
    """

    def __init__(self, quiet: bool = False) -> None:
        from toolkit.runner.progress import LineReporter, SilentReporter

        self.quiet = quiet
        self.stdout_closed = False
        self.reporter: Any = SilentReporter() if quiet else LineReporter(self.err)

    @contextlib.contextmanager
    def live(self) -> Iterator[None]:
        """On a terminal (and not ``--quiet``), one live progress display for the whole
        invocation; plain lines otherwise."""
        if self.quiet or not sys.stderr.isatty():
            yield
            return
        from toolkit.runner.progress import LiveReporter

        with LiveReporter() as live:
            self.reporter = live
            yield

    def out(self, text: str) -> None:
        """Writes a line of results to stdout."""
        if self.stdout_closed:
            return
        try:
            print(text, flush=True)
        except BrokenPipeError:
            self._close_stdout()
        except OSError as e:
            if e.errno != errno.EPIPE:
                raise
            self._close_stdout()

    def _close_stdout(self) -> None:
        self.stdout_closed = True
        # Later writes, and the flush at interpreter exit, then go nowhere instead of failing.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)

    def err(self, message: str) -> None:
        """A line on stderr (errors, failed checks): printed even with ``--quiet``."""
        _write(sys.stderr, f"aliasgrad: {message}")

    def progress(self, message: str) -> None:
        """A progress line on stderr, unless ``--quiet``."""
        self.reporter.say(message)


def _write(stream: TextIO, text: str) -> None:
    # stderr gone too: nothing useful can be said
    with contextlib.suppress(BrokenPipeError, ValueError):
        print(text, file=stream, flush=True)


def _parse_strategies(text: str | None) -> tuple[str, ...] | None:
    from toolkit.runner.strategies import TRAIN_STRATEGIES

    if text is None:
        return None
    chosen = tuple(s.strip() for s in text.split(",") if s.strip())
    bad = [s for s in chosen if s not in TRAIN_STRATEGIES]
    if bad or not chosen:
        raise ConfigError(
            f"--strategies: unknown {', '.join(map(repr, bad)) or 'empty list'}; "
            f"valid: {', '.join(TRAIN_STRATEGIES)}"
        )
    return chosen


def check_writable(out: Path, flag: str = "--out") -> None:
    """Checks that run folders can be created under ``out``, leaving nothing behind.

    A probe folder is created and removed in ``out`` (or, if ``out`` does not exist yet, in
    its nearest existing parent, where ``out`` will be created).

    Raises:
        OutputError: ``out`` or a parent is a file, or the folder is not writable.

    Example:
        >>> import tempfile
        >>> check_writable(Path(tempfile.mkdtemp()) / "results")
    """
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        under = "" if existing == out else f" is under {str(existing)!r}, which"
        raise OutputError(f"{flag}: {str(out)!r}{under} is a file, not a folder; "
                          "give a folder for the run folders")
    try:
        probe = tempfile.mkdtemp(prefix=".aliasgrad-probe-", dir=existing)
        os.rmdir(probe)
    except OSError as e:
        raise OutputError(f"{flag}: cannot create folders in {str(existing)!r} "
                          f"({e.strerror}); give a writable folder") from None


def _output_error(out: Path, e: OSError) -> OutputError:
    return OutputError(f"--out: cannot write a run folder under {str(out)!r}: "
                       f"{e.strerror or e} (errno {e.errno}); nothing from this run was kept")


def _parsed_configs(paths: Sequence[str]) -> list[Any]:
    from toolkit.runner.config import parse_config, parse_config_text
    from toolkit.runner.demo import demo_configs

    if paths:
        return [parse_config(Path(c)) for c in paths]
    return [parse_config_text(text, name=name) for name, text in demo_configs()]


def _plan(args: argparse.Namespace) -> tuple[list[Any], list[tuple[Any, list[Any]]]]:
    """Every config preflighted (single runs) or every sweep point preflighted (sweeps)."""
    from toolkit.runner.preflight import preflight
    from toolkit.runner.sweep import parse_shard, plan, point_file

    shard = parse_shard(args.shard) if args.shard else (1, 1)
    singles, sweeps = [], []
    for file in _parsed_configs(args.configs):
        points = plan(file, args.set or (), args.seeds, shard)
        if args.seeds or args.shard or file.sweep or len(points) != 1:
            sweeps.append((file, _checked(file, points)))
        else:
            singles.append(preflight(point_file(file, points[0]) if args.set else file))
    return singles, sweeps


def _checked(file: Any, points: list[Any]) -> list[Any]:
    """``points``, each preflighted as a config file would be (before anything runs)."""
    from toolkit.runner.preflight import preflight
    from toolkit.runner.sweep import point_file

    for point in points:
        preflight(point_file(file, point))
    return points


def _summary_lines(results: Sequence[tuple[Any, Path]]) -> list[str]:
    """Per config: checks (expectations that must hold) apart from findings (which strategies
    are not exact, and where); report paths last."""
    from toolkit.runner.report import findings

    lines = []
    for output, folder in results:
        failed = [c for c in output.checks if not c.passed]
        total = len(output.checks)
        status = "FAIL" if failed else "ok"
        lines.append(f"{status:<4} {output.config.name} — {output.config.title}")
        lines.append(f"     checks (expectations that must hold): {total - len(failed)}/{total} "
                     "passed")
        lines += [f"     FAILED {c.name}: {c.detail}" for c in failed[:10]]
        if len(failed) > 10:
            lines.append(f"     … {len(failed) - 10} more in {folder / 'report.md'}")
        lines += [f"     finding: {line}" for line in findings(output.result)]
    lines += [f"report: {folder / 'report.md'}" for _, folder in results]
    return lines


def cmd_run(args: argparse.Namespace, console: Console) -> int:
    """Runs configs (or the embedded demo) and writes one run folder per config."""
    from toolkit.runner.interrupt import checkpoint
    from toolkit.runner.run import run_config
    from toolkit.runner.rundir import write_run

    # Everything is validated before anything is computed. Single configs are all computed
    # before any is written (all or nothing); each sweep then appears whole, in its own folder.
    # Bad input, a failing experiment or an interrupt leaves --out as it was before them.
    strategies = _parse_strategies(args.strategies)
    out = Path(args.out)
    check_writable(out)
    if args.jobs < 1:
        raise ConfigError(f"--jobs: must be >= 1, got {args.jobs}")
    configs, sweeps = _plan(args)
    outputs = []
    for config in configs:
        console.progress(f"running {config.name} ({config.title})")
        outputs.append(run_config(config, strategies=strategies, progress=console.reporter))
    written: list[Path] = []
    try:
        for output in outputs:
            checkpoint()
            written.append(write_run(output, out))
    except (OSError, KeyboardInterrupt) as e:
        # All or nothing: a failed or interrupted write keeps none of this invocation's runs.
        for folder in written:
            shutil.rmtree(folder, ignore_errors=True)
        if isinstance(e, KeyboardInterrupt):
            raise
        raise _output_error(out, e) from None
    results = list(zip(outputs, written, strict=True))
    summary = _summary_lines(results)
    if args.json:
        console.out(json.dumps([{"run": str(f), **o.summary} for o, f in results], indent=2))
        for line in summary:
            console.err(line)
    else:
        for line in summary:
            console.out(line)
    try:
        sweep_failed = _run_sweeps(sweeps, out, args.jobs, strategies, console)
    except OSError as e:
        raise _output_error(out, e) from None
    if console.stdout_closed:
        console.err(f"stdout was closed; all {len(results) + len(sweeps)} configs ran and were "
                    f"written under {str(out)!r}")
    return 1 if sweep_failed or any(not o.ok for o in outputs) else 0


def _run_sweeps(sweeps: Sequence[tuple[Any, list[Any]]], out: Path, jobs: int,
                strategies: tuple[str, ...] | None, console: Console) -> bool:
    """Runs each sweep into its own folder; True when a point failed a check."""
    from toolkit.runner.sweep import run_sweep

    failed = False
    for file, points in sweeps:
        console.progress(f"sweeping {file.name}: {len(points)} points, {jobs} worker(s)")
        folder, results = run_sweep(file, points, out, workers=jobs, strategies=strategies,
                                    say=console.progress,
                                    tick=console.reporter.task(f"{file.name}: points",
                                                               len(points)))
        bad = [r for r in results if not r["ok"]]
        failed |= bool(bad)
        console.out(f"{'FAIL' if bad else 'ok':<4} {file.name}: {len(results) - len(bad)}/"
                    f"{len(results)} points passed every check")
        console.out(f"report: {folder / 'aggregate.md'}")
    return failed


def cmd_aggregate(args: argparse.Namespace, console: Console) -> int:
    """Merges run folders and sweep folders (shards) into one new aggregate folder."""
    from toolkit.runner.aggregate import aggregate, find_run_folders
    from toolkit.runner.rundir import StagedRun

    try:
        folders = find_run_folders([Path(p) for p in args.folders])
    except ValueError as e:
        raise ConfigError(f"aggregate: {e}") from None
    out = Path(args.out)
    check_writable(out)
    staged = StagedRun(out, "aggregate")
    try:
        with staged as tmp:
            aggregate(folders, tmp)
    except ValueError as e:  # e.g. one seed of a group given twice (a shard passed twice)
        raise ConfigError(f"aggregate: {e}") from None
    assert staged.final is not None
    console.out(f"aggregated {len(folders)} runs")
    console.out(f"report: {staged.final / 'aggregate.md'}")
    return 0


def cmd_compare(args: argparse.Namespace, console: Console) -> int:
    """Prints what changed between two run folders or two sweep/aggregate folders."""
    from toolkit.runner.diff import compare_runs

    try:
        lines = compare_runs(Path(args.a), Path(args.b))
    except ValueError as e:
        raise ConfigError(f"compare: {e}") from None
    for line in lines:
        console.out(line)
    return 0


def _publish_files() -> list[Any]:
    """The configs to publish: ``./configs/*.toml`` in a checkout, else the installed ones,
    named ``configs/<file>`` either way so that no machine path enters the results."""
    from toolkit.runner.config import parse_config_text, read_config_text

    here = Path.cwd() / "configs"
    paths = sorted(here.glob("*.toml")) if here.is_dir() else []
    paths = paths or shipped_configs()
    return [parse_config_text(read_config_text(p), name=f"configs/{p.name}", base_dir=p.parent,
                              path=p) for p in paths]


def cmd_publish(args: argparse.Namespace, console: Console) -> int:
    """Runs every config into ``<out>/reference/`` and rewrites ``<out>/README.md``."""
    from toolkit.runner.preflight import preflight
    from toolkit.runner.publish import publish_run, publish_sweep, write_index
    from toolkit.runner.run import run_config
    from toolkit.runner.sweep import plan

    root = Path(args.out)
    check_writable(root)
    # Each config is a run (its preflighted Config) or a sweep (its checked points), all
    # checked before anything runs.
    plans = [(f, _checked(f, plan(f)) if f.sweep else preflight(f)) for f in _publish_files()]
    entries, sweeps, failed = [], [], False
    try:
        for file, config in plans:
            console.progress(f"publishing {file.name}")
            if isinstance(config, list):
                entry, ok = publish_sweep(file, config, root, workers=args.jobs,
                                          say=console.progress)
                sweeps.append(entry)
            else:
                output = run_config(config, progress=console.reporter)
                folder, plots = publish_run(output, root)
                entries.append((folder, output.result, plots))
                ok = output.ok
            failed |= not ok
    except OSError as e:
        raise _output_error(root, e) from None
    console.out(f"report: {write_index(root, entries, sweeps)}")
    return 1 if failed else 0


def cmd_list(args: argparse.Namespace, console: Console) -> int:
    """Lists shipped configs, experiments and strategies."""
    import toolkit.experiments as experiments
    from toolkit.runner.strategies import STRATEGIES, TRAIN_STRATEGIES

    console.out("configs (run one with: aliasgrad run PATH):")
    for path in shipped_configs():
        console.out(f"  {path}")
    console.out("experiments (experiment = NAME in a config):")
    for mod in pkgutil.iter_modules(experiments.__path__):
        console.out(f"  {mod.name}")
    console.out("strategies:")
    for s in STRATEGIES:
        console.out(f"  {s}")
    console.out("training-only strategies:")
    for s in TRAIN_STRATEGIES:
        if s not in STRATEGIES:
            console.out(f"  {s}")
    return 0


def latest_run(root: Path) -> Path:
    """The most recently completed run folder directly under ``root``.

    Raises:
        ConfigError: ``root`` holds no run folder.
    """
    runs = [p for p in root.iterdir() if not p.name.startswith(".")
            and (p / "report.md").is_file()] if root.is_dir() else []
    if not runs:
        raise ConfigError(f"show: no run folder under {str(root)!r}; run `aliasgrad run` first "
                          "or give --out")
    # report.md is the last file a run writes, so its time is the run's completion time.
    return max(runs, key=lambda p: ((p / "report.md").stat().st_mtime_ns, p.name))


def cmd_show(args: argparse.Namespace, console: Console) -> int:
    """Prints a run folder's report (``latest``: the newest under ``--out``)."""
    folder = latest_run(Path(args.out)) if args.run_dir == LATEST else Path(args.run_dir)
    report = folder / "report.md"
    if not report.is_file():
        raise ConfigError(f"show: {str(folder)!r} is not a run folder (no report.md)")
    console.out(report.read_text(encoding="utf-8"))
    console.out(f"report: {report}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(
        prog="aliasgrad",
        description="Compare AD strategies on aliased and tied parameters.",
        epilog="exit codes: 0 passed, 1 a check failed, 2 bad input, 130 interrupted",
    )
    parser.add_argument("--version", action="version", version=f"aliasgrad {toolkit.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run configs (no CONFIG: the embedded demo)")
    run.add_argument("configs", nargs="*", metavar="CONFIG", help="TOML config files")
    run.add_argument("--out", default=str(DEFAULT_OUT), help="results root (default: results)")
    run.add_argument("--strategies", help="comma-separated subset of strategies (gradients "
                     "and training)")
    run.add_argument("--set", action="append", metavar="KEY=V[,V...]",
                     help="override a config key (one value) or sweep it (several values); "
                          "repeatable, e.g. --set train.steps=50 --set dtype=float32,float64")
    run.add_argument("--seeds", metavar="A:B|A,B,...",
                     help="sweep over seeds, e.g. 0:10 (seed is its own axis)")
    run.add_argument("-j", "--jobs", type=int, default=1,
                     help="worker processes for a sweep's points (default 1)")
    run.add_argument("--shard", metavar="I/N",
                     help="run only the I-th of N parts of the grid; merge with aggregate")
    run.add_argument("--json", action="store_true", help="print summaries as JSON on stdout")
    run.add_argument("--quiet", "-q", action="store_true",
                     help="print only the summary and errors")
    run.set_defaults(func=cmd_run)
    pub = sub.add_parser(
        "publish", help="run every config (./configs, else the shipped ones) into "
        "OUT/reference and index them in OUT/README.md"
    )
    pub.add_argument("--out", default=str(DEFAULT_OUT), help="results root (default: results)")
    pub.add_argument("--quiet", "-q", action="store_true", help="print only errors")
    pub.add_argument("-j", "--jobs", type=int, default=1,
                     help="worker processes for the points of sweep configs (default 1)")
    pub.set_defaults(func=cmd_publish)
    agg = sub.add_parser("aggregate", help="merge sweep shards or run folders into one report")
    agg.add_argument("folders", nargs="+", metavar="FOLDER", help="sweep or run folders")
    agg.add_argument("--out", default=str(DEFAULT_OUT), help="results root (default: results)")
    agg.set_defaults(func=cmd_aggregate)
    cmp = sub.add_parser("compare", help="what changed between two runs or two sweeps")
    cmp.add_argument("a", metavar="A", help="a run folder or a sweep/aggregate folder")
    cmp.add_argument("b", metavar="B", help="the folder to compare it with")
    cmp.set_defaults(func=cmd_compare)
    lst = sub.add_parser("list", help="shipped configs, experiments and strategies")
    lst.set_defaults(func=cmd_list)
    show = sub.add_parser("show", help="print a run folder's report")
    show.add_argument("run_dir", metavar="RUN_DIR", help=f"a run folder, or {LATEST!r}")
    show.add_argument("--out", default=str(DEFAULT_OUT),
                      help=f"where {LATEST!r} looks (default: results)")
    show.set_defaults(func=cmd_show)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (see the module docstring)."""
    from toolkit.runner.interrupt import deferred_sigint

    args = build_parser().parse_args(argv)
    console = Console(quiet=getattr(args, "quiet", False))
    command: Callable[[argparse.Namespace, Console], int] = args.func
    try:
        with deferred_sigint(), console.live():
            return command(args, console)
    except ConfigError as e:
        console.err(f"error: {e}")
        return 2
    except KeyboardInterrupt:
        console.err("interrupted; no partial run folder was kept, earlier runs are untouched")
        return 130


if __name__ == "__main__":
    sys.exit(main())
