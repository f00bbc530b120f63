"""docs/runner.md's Python example runs as written, and its command lines parse."""

import re
import shlex
from pathlib import Path

from toolkit.cli import build_parser

DOC = Path(__file__).resolve().parent.parent / "docs" / "runner.md"
TEXT = DOC.read_text()


def test_python_api_example_runs():
    (code,) = re.findall(r"```python\n(.*?)```", TEXT, flags=re.S)
    exec(compile(code, str(DOC), "exec"), {"__name__": "runner_doc"})


def test_every_documented_command_line_parses():
    (block,) = re.findall(r"```console\n(.*?)```", TEXT, flags=re.S)
    commands = block.replace("\\\n", " ").splitlines()
    parser = build_parser()
    for line in commands:
        args = shlex.split(line.split("#")[0].removeprefix("$ "))
        assert args[0] == "aliasgrad", line
        parser.parse_args(args[1:])


def test_every_toml_block_in_the_docs_parses():
    import tomllib

    for doc in sorted(DOC.parent.glob("*.md")):
        for block in re.findall(r"```toml\n(.*?)```", doc.read_text(), flags=re.S):
            tomllib.loads(block)
