"""The runner: config → strategies → reference → comparison → report → run folder.

Data flows one way through these modules: ``config`` loads and validates a TOML file;
``strategies`` holds the :class:`~toolkit.runner.strategies.Strategy` interface and the
registry of every strategy, dispatching to the backends (``implicit`` on the tape,
:mod:`toolkit.explicit` on JAX), which return the records of ``results``; ``reference``
computes the float64 finite-difference ground truth without jax; ``compare`` turns steps into
typed verdicts (``results.Verdict``); ``report`` and ``plots`` render the outputs; ``run`` and
``rundir`` write the run folder (``interrupt`` stops it cleanly on Ctrl-C); ``publish``
regenerates the committed reference results and ``demo`` holds the embedded demo configs.
The command line is ``toolkit.cli``.
"""
