"""The runner: config → strategies → reference → comparison → report → run folder.

Data flows one way through these modules: ``config`` loads and validates a TOML file,
``strategies`` computes every strategy's gradients (tape and JAX backends), ``reference``
the float64 finite-difference ground truth, ``compare`` the verdicts, ``report`` and
``plots`` the outputs, and ``run``/``rundir`` write the run folder. The command line is
``toolkit.cli``.
"""
