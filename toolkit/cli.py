"""The ``aliasgrad`` command (also ``python -m toolkit``).

Exit codes: 0 all checks passed; 1 a recorded expectation or a must-be-exact strategy
failed; 2 bad input (the message names the file and key; no traceback).

Example:
    $ aliasgrad run                      # the embedded demo: the seed's cases + tied autoencoder
    $ aliasgrad run configs/partial_tie.toml --strategies implicit-identity,explicit-shared
    $ aliasgrad list
    $ aliasgrad publish                  # regenerate results/README.md and results/reference/
    $ aliasgrad show results/seed-<timestamp>
"""

from __future__ import annotations

import argparse
import json
import os
import pkgutil
import sys
from collections.abc import Sequence
from pathlib import Path

from toolkit.errors import ConfigError

DEFAULT_OUT = Path("results")


def _repo_configs() -> Path:
    """The shipped ``configs/`` folder: next to the current directory or the source tree."""
    here = Path.cwd() / "configs"
    return here if here.is_dir() else Path(__file__).resolve().parent.parent / "configs"


def _parse_strategies(text: str | None) -> tuple[str, ...] | None:
    from toolkit.runner.strategies import STRATEGIES

    if text is None:
        return None
    chosen = tuple(s.strip() for s in text.split(",") if s.strip())
    bad = [s for s in chosen if s not in STRATEGIES]
    if bad or not chosen:
        raise ConfigError(
            f"--strategies: unknown {', '.join(map(repr, bad)) or 'empty list'}; "
            f"valid: {', '.join(STRATEGIES)}"
        )
    return chosen


def _say(message: str) -> None:
    print(f"aliasgrad: {message}", file=sys.stderr, flush=True)


def cmd_run(args: argparse.Namespace) -> int:
    """Runs configs (or the embedded demo) and writes one run folder per config."""
    from toolkit.runner.config import load_config, load_config_text
    from toolkit.runner.demo import demo_configs
    from toolkit.runner.run import run_config, write_run

    strategies = _parse_strategies(args.strategies)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out: {str(out)!r} exists and is not a folder")
    # Validate every config before running any, so bad input costs nothing.
    if args.configs:
        configs = [load_config(Path(c)) for c in args.configs]
    else:
        configs = [load_config_text(text, name=name) for name, text in demo_configs()]
    failed = False
    summaries = []
    for config in configs:
        _say(f"running {config.name} ({config.title})")
        output = run_config(config, strategies=strategies, progress=_say)
        folder = write_run(output, out)
        summaries.append({"run": str(folder), **output.summary})
        passed = sum(c.passed for c in output.checks)
        _say(f"wrote {folder} — checks {passed}/{len(output.checks)} passed, "
             f"{output.timing['total']:.1f} s")
        if not args.json:
            print((folder / "report.md").read_text())
        for check in output.checks:
            if not check.passed:
                _say(f"FAILED {check.name}: {check.detail}")
        failed |= not output.ok
    if args.json:
        print(json.dumps(summaries, indent=2))
    return 1 if failed else 0


def cmd_publish(args: argparse.Namespace) -> int:
    """Runs every shipped config into ``results/reference/`` and rewrites the index."""
    from toolkit.runner.config import load_config
    from toolkit.runner.publish import publish_run, write_index
    from toolkit.runner.run import run_config

    paths = sorted(_repo_configs().glob("*.toml"))
    if not paths:
        raise ConfigError(f"publish: no configs in {str(_repo_configs())!r}")
    # Relative names keep machine paths out of the committed results.
    configs = [load_config(os.path.relpath(p)) for p in paths]
    root = Path(args.out)
    entries = []
    failed = False
    for config in configs:
        _say(f"running {config.name} ({config.title})")
        output = run_config(config, progress=_say)
        folder, plots = publish_run(output, root)
        entries.append((folder, output.summary, plots))
        failed |= not output.ok
        _say(f"{config.name}: {output.timing['total']:.1f} s, "
             f"checks {sum(c.passed for c in output.checks)}/{len(output.checks)} passed")
    _say(f"wrote {write_index(root, entries)}")
    return 1 if failed else 0


def cmd_list(args: argparse.Namespace) -> int:
    """Lists shipped configs, experiments and strategies."""
    import toolkit.experiments as experiments
    from toolkit.runner.strategies import STRATEGIES, TRAIN_STRATEGIES

    folder = _repo_configs()
    print("configs:")
    for path in sorted(folder.glob("*.toml")):
        print(f"  {path}")
    print("experiments:")
    for mod in pkgutil.iter_modules(experiments.__path__):
        print(f"  {mod.name}")
    print("strategies:")
    for s in STRATEGIES:
        print(f"  {s}")
    print("training-only strategies:")
    for s in TRAIN_STRATEGIES:
        if s not in STRATEGIES:
            print(f"  {s}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    """Prints a run folder's report."""
    report = Path(args.run_dir) / "report.md"
    if not report.is_file():
        raise ConfigError(f"show: {str(args.run_dir)!r} is not a run folder (no report.md)")
    print(report.read_text())
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(
        prog="aliasgrad",
        description="Compare AD strategies on aliased and tied parameters.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run configs (no CONFIG: the embedded demo)")
    run.add_argument("configs", nargs="*", metavar="CONFIG", help="TOML config files")
    run.add_argument("--out", default=str(DEFAULT_OUT), help="results root (default: results)")
    run.add_argument("--strategies", help="comma-separated subset of strategies")
    run.add_argument("--json", action="store_true", help="print summaries as JSON on stdout")
    run.set_defaults(func=cmd_run)
    pub = sub.add_parser(
        "publish", help="run every shipped config into results/reference and index them"
    )
    pub.add_argument("--out", default=str(DEFAULT_OUT), help="results root (default: results)")
    pub.set_defaults(func=cmd_publish)
    lst = sub.add_parser("list", help="shipped configs, experiments and strategies")
    lst.set_defaults(func=cmd_list)
    show = sub.add_parser("show", help="print a run folder's report")
    show.add_argument("run_dir", metavar="RUN_DIR")
    show.set_defaults(func=cmd_show)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as e:
        print(f"aliasgrad: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("aliasgrad: interrupted; no partial run folder was kept", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader (``| head``) went away: stop quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
