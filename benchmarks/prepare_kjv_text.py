"""Writes ``experiments/data/kjv_pentateuch.txt``, the text the transformer LM trains on.

The text is the first five books of the King James Version of the Bible (Genesis to
Deuteronomy), public domain, as Debian's ``bible-kjv-text`` package ships it. The package's
reader (``bible``, package ``bible-kjv``) prints it one verse a line, each line starting with
its reference (``Ge1:1 In the beginning ...``); this script drops the references and writes the
verses under a header that names the source and the licence. The output is the same bytes
every time it is run against the same package version.

Run (as root, once per machine):

    apt-get install bible-kjv-text
    python benchmarks/prepare_kjv_text.py

Example:
    >>> verse_text("Ge1:1 In the beginning God created the heaven and the earth.")
    'In the beginning God created the heaven and the earth.'
"""

from __future__ import annotations

import argparse
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "experiments" / "data" / "kjv_pentateuch.txt"
RANGE = "Gen1:1-Deut34:12"
REFERENCE = re.compile(r"^[1-3]?[A-Za-z]+\d+:\d+ ")

HEADER = """\
# The Pentateuch (Genesis, Exodus, Leviticus, Numbers, Deuteronomy), King James Version.
# Source: Debian package bible-kjv-text {version} (data file /usr/lib/bible.data), printed
#   one verse a line by `bible -f {range}` (package bible-kjv), verse references removed.
# Licence: public domain. The King James Version was translated in 1611; Debian's copyright
#   file for bible-kjv-text states that the copyright of its text has expired. (In the United
#   Kingdom the Crown's letters patent still govern printing of this translation.)
# Regenerate: python benchmarks/prepare_kjv_text.py
# Lines starting with '#' are this header; every other line is one verse.

"""


def verse_text(line: str) -> str:
    """A verse line of ``bible -f`` without its leading reference.

    Raises:
        ValueError: the line does not start with a reference such as ``Ge1:1``.
    """
    match = REFERENCE.match(line)
    if match is None:
        raise ValueError(f"not a verse line of `bible -f`: {line[:40]!r}")
    return line[match.end():].strip()


def package_version() -> str:
    """The installed version of ``bible-kjv-text`` (``dpkg-query``)."""
    out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "bible-kjv-text"],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def prepare(output: Path = OUTPUT) -> int:
    """Writes the verses of :data:`RANGE` under the header to ``output``; returns its size."""
    printed = subprocess.run(["bible", "-f", RANGE], check=True, capture_output=True,
                             text=True, stdin=subprocess.DEVNULL).stdout
    verses = [verse_text(line) for line in printed.splitlines() if line.strip()]
    text = HEADER.format(version=package_version(), range=RANGE) + "\n".join(verses) + "\n"
    output.write_text(text, encoding="utf-8")
    return len(text.encode("utf-8"))


def main() -> None:
    """Command line: ``--output PATH`` (default ``experiments/data/kjv_pentateuch.txt``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    size = prepare(args.output)
    print(f"wrote {args.output} ({size} bytes)")


if __name__ == "__main__":
    main()
