"""Reading an INI file into sections of raw entries, or saying exactly why not.

Only the syntax is judged here (bytes, encoding, headers, duplicates); what the keys
mean is :mod:`pihub.config`'s business.
"""

from __future__ import annotations

import configparser
from collections.abc import Callable
from pathlib import Path

#: A section's entries: lower-case key -> (the key as written, its raw value).
Entries = dict[str, tuple[str, str]]
#: Where a problem is reported: (section or None, key or None, message).
Report = Callable[[str | None, str | None, str], None]

#: A config file is small; anything larger is a mistake (the wrong file).
MAX_FILE_BYTES = 1 << 20


class _Reader(configparser.ConfigParser):
    def optionxform(self, optionstr: str) -> str:
        return optionstr  # keep keys as written for messages; matched case-insensitively later


def read_ini(path: Path, report: Report) -> dict[str, Entries] | None:
    """The file's sections, or None after reporting every syntax problem found."""
    problems = 0

    def out(section: str | None, key_name: str | None, message: str) -> None:
        nonlocal problems
        problems += 1
        report(section, key_name, message)

    try:
        with path.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        out(None, None, "no such file")
        return None
    except IsADirectoryError:
        out(None, None, "is a directory, not a config file")
        return None
    except (OSError, ValueError) as e:
        out(None, None, f"cannot be read: {getattr(e, 'strerror', None) or type(e).__name__}")
        return None
    if len(data) > MAX_FILE_BYTES:
        out(None, None, f"is over {MAX_FILE_BYTES} bytes; is it really a config file?")
        return None
    if b"\x00" in data:
        out(None, None, "holds NUL bytes; is it a text file?")
        return None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        out(None, None, f"line {line}: is not UTF-8 text")
        return None
    reader = _Reader(interpolation=None, strict=True, comment_prefixes=("#", ";"),
                     inline_comment_prefixes=(";", "#"), empty_lines_in_values=False,
                     default_section="\x00none")  # no [DEFAULT]: it would be an unknown section
    try:
        reader.read_string(text, source=str(path))
    except configparser.DuplicateSectionError as e:
        out(e.section, None, f"line {e.lineno}: the section appears twice")
    except configparser.DuplicateOptionError as e:
        out(e.section, e.option, f"line {e.lineno}: the key appears twice in this section")
    except configparser.MissingSectionHeaderError as e:
        out(None, None, f"line {e.lineno}: a key before any [section] header")
    except configparser.ParsingError as e:
        # Never echo the line: it might be a pasted password.
        for lineno, _line in e.errors:
            out(None, None, f"line {lineno}: is neither [section], key = value nor a comment")
    except configparser.Error as e:
        out(None, None, f"is not a valid INI file ({type(e).__name__})")
    if problems:
        return None
    result: dict[str, Entries] = {}
    for section in reader.sections():
        entries: Entries = {}
        for written, value in reader.items(section, raw=True):
            if written.lower() in entries:
                out(section, written,
                        f"the key appears twice (also as {entries[written.lower()][0]!r})")
            entries[written.lower()] = (written, value)
        result[section] = entries
    return result
