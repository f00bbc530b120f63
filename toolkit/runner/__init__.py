"""The runner: config → preflight → strategies → reference → compare → records → report.

Data flows one way through these modules, none importing a later one: ``config`` parses a
TOML file (keys, types, ranges; no code runs); ``strategies`` is the registry, one
:class:`~toolkit.runner.strategies.Strategy` entry per strategy holding its whole behaviour
and dispatching to the engines (``implicit`` on the tape, :mod:`toolkit.explicit` on JAX),
which take a :class:`~toolkit.problem.Problem`; ``preflight`` checks a parsed config against
the experiment's code, the registry and optax; ``reference`` computes the float64
finite-difference ground truth without jax (``evaluate`` runs a loss in NumPy); ``compare``
turns steps into typed verdicts; ``results`` holds the typed records and their JSON; ``run``
computes a config into records; ``report`` and ``plots`` render them; ``rundir`` writes the
run folder (``interrupt`` stops it cleanly on Ctrl-C); ``publish`` regenerates the committed
reference results and ``demo`` holds the embedded demo configs. The command line is
``toolkit.cli``.
"""
