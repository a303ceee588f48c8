"""The one Jinja environment over templates/, and writing generated files only when they change
(so a regenerated project rebuilds only what changed).

Every string a template interpolates goes through a filter that escapes it for the language of the
file it lands in (`|c_string`, `|c_comment`, `|make`, `|cmake`, `|yaml`, `|ini` …) or refuses it in
one sentence; a string that reaches `{{ }}` unfiltered is a template bug, raised at render time
(numbers pass as they are). `|verbatim` marks text tinyedge itself wrote in that language: generated
code and template literals."""

from __future__ import annotations

import json
import numbers
import re
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import jinja2

from tinyedge.errors import TinyedgeError
from tinyedge.paths import TEMPLATES_DIR


class Escaped(str):
    """Text made safe for the file it is rendered into."""


class UnescapedValue(TypeError):
    """A template interpolates a string without an escaping filter: a tinyedge bug."""


def verbatim(value: Any) -> Escaped:
    """Text tinyedge wrote in the target language itself (generated code, a template's literal)."""
    return Escaped(value)


def printable(text: str) -> str:
    """Every character outside printable ASCII (and the backslash) as a visible \\x.. / \\u.... escape."""
    def shown(ch: str) -> str:
        if " " <= ch <= "~" and ch != "\\":
            return ch
        return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"
    return "".join(shown(ch) for ch in text)


def c_comment(value: Any) -> Escaped:
    """Safe inside a C/C++ /* */ or // comment: one line, no comment delimiters, no trigraphs and
    no backslash that could splice the next line in."""
    text = printable(str(value))
    text = re.sub(r"\*(?=/)", "* ", text)
    text = re.sub(r"/(?=\*)", "/ ", text)
    return Escaped(re.sub(r"\?(?=\?)", "? ", text))


def c_string(value: Any) -> Escaped:
    """The body of a C/C++ string literal ("..."): quotes, backslashes, '?' (trigraphs) and every
    byte outside printable ASCII escaped (octal, three digits, so no following digit extends it)."""
    out = []
    for byte in str(value).encode():
        ch = chr(byte)
        if ch in '"\\?':
            out.append("\\" + ch)
        elif 0x20 <= byte < 0x7F:
            out.append(ch)
        else:
            out.append(f"\\{byte:03o}")
    return Escaped("".join(out))


def refuse(value: Any, where: str, allowed: str) -> TinyedgeError:
    return TinyedgeError(f"{str(value)!r} cannot be written into {where} (only {allowed}): rename it.")


C_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
HEADER_NAME = re.compile(r"[A-Za-z0-9_./+-]+")
# A word that means the same to Make and to the shell its recipes run in: no $, #, quotes,
# backquotes, spaces, semicolons, redirections or wildcards.
MAKE_WORD = re.compile(r"[A-Za-z0-9_./+,:=@%^~-]+")
MAKE_ALLOWED = "letters, digits and _ . / + , : = @ % ^ ~ -"


def c_identifier(value: Any) -> Escaped:
    if not C_IDENTIFIER.fullmatch(str(value)):
        raise refuse(value, "C code as an identifier", "letters, digits and _, not first a digit")
    return Escaped(value)


def symbol(value: Any) -> Escaped:
    """Part of a C or Kconfig symbol (CONFIG_ESPTOOLPY_FLASHSIZE_4MB): letters, digits and _."""
    if not re.fullmatch(r"[A-Za-z0-9_]+", str(value)):
        raise refuse(value, "a configuration symbol", "letters, digits and _")
    return Escaped(value)


def c_header(value: Any) -> Escaped:
    if not HEADER_NAME.fullmatch(str(value)):
        raise refuse(value, "an #include line", "letters, digits and _ . / + -")
    return Escaped(value)


def make_word(value: Any) -> Escaped:
    """One word of a Makefile (a source, an -I directory, a flag) that Make and the shell read as is
    (also an unquoted CMake argument: `|cmake_word`)."""
    if not MAKE_WORD.fullmatch(str(value)):
        raise refuse(value, "a Makefile", MAKE_ALLOWED)
    return Escaped(value)


def make_words(values: Any) -> Escaped:
    return Escaped(" ".join(make_word(v) for v in values))


def hash_comment(value: Any) -> Escaped:
    """Safe after '#' (Make, CMake, YAML, sdkconfig, CSV) or ';' (ini): one line, no trailing backslash."""
    return Escaped(printable(str(value)))


def cmake_string(value: Any) -> Escaped:
    """The body of a CMake quoted argument ("..."): \\, ", $ and @ escaped; one line, and no ';' (a list)."""
    text = str(value)
    if any(ch in text for ch in "\n\r\0;"):
        raise refuse(value, "a CMake file", "one line without ';'")
    return Escaped(re.sub(r'([\\"$@])', r"\\\1", text))


def yaml_string(value: Any) -> Escaped:
    """A YAML scalar, double-quoted (JSON's string syntax is YAML's)."""
    return Escaped(json.dumps(str(value)))


INI_VALUE = re.compile(r"[A-Za-z0-9_./+,:=@%^~\-\[\]<>*]([A-Za-z0-9_./+,:=@%^~\-\[\]<>*#;]| (?![#;]))*")


def ini_value(value: Any) -> Escaped:
    """A PlatformIO .ini value: one line that no comment (' ;', ' #') or ${interpolation} cuts short."""
    if not INI_VALUE.fullmatch(str(value)) or str(value).endswith(" "):
        raise refuse(value, "an ini file", "one line of letters, digits, spaces and _ . / + , : = @ % ^ ~ - [ ] < > * # ;, "
                     "no ';' or '#' after a space")
    return Escaped(value)


def csv_field(value: Any) -> Escaped:
    """One field of a CSV file (ESP-IDF's partition table)."""
    if not MAKE_WORD.fullmatch(str(value)) or "," in str(value):
        raise refuse(value, "a CSV file", "letters, digits and _ . / + : = @ % ^ ~ -")
    return Escaped(value)


def hex_number(value: Any) -> Escaped:
    """An integer as 0x... (a number is never text in disguise)."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise UnescapedValue(f"|hex takes an integer, not {value!r}: this is a tinyedge bug")
    return Escaped(f"{int(value):#x}")


def c_float(value: Any) -> Escaped:
    """A float with the nine decimals a float32 needs (append 'f' in the template)."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise UnescapedValue(f"|c_float takes a number, not {value!r}: this is a tinyedge bug")
    return Escaped(f"{float(value):.9e}")


def py_string(value: Any) -> Escaped:
    """A Python string literal (quotes included)."""
    return Escaped(repr(str(value)))


FILTERS: dict[str, Callable[[Any], Escaped]] = {
    "verbatim": verbatim, "c_comment": c_comment, "c_string": c_string, "c_identifier": c_identifier, "symbol": symbol,
    "c_header": c_header, "make": make_word, "make_words": make_words, "hash_comment": hash_comment,
    "cmake": cmake_string, "cmake_word": make_word, "yaml": yaml_string, "ini": ini_value, "csv": csv_field, "hex": hex_number, "c_float": c_float,
    "py_string": py_string,
}


def only_escaped(value: Any) -> Any:
    """Jinja's finalize: numbers and escaped text pass, any other string is a template bug."""
    if isinstance(value, Escaped) or (isinstance(value, numbers.Real) and not isinstance(value, bool)):
        return value
    raise UnescapedValue(f"a template interpolates {value!r} without an escaping filter "
                         f"(one of {', '.join(FILTERS)}): this is a tinyedge bug")


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES_DIR), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, finalize=only_escaped)
    env.filters.update(FILTERS)
    return env


def render(template: str, **context: Any) -> str:
    """templates/<template> rendered with `context`, e.g. render("common/main.c.j2", board=board)."""
    return environment().get_template(template).render(**context)


def render_file(path: Path, **context: Any) -> str:
    """A template that lives outside templates/ (a port's linker script), rendered with the same settings."""
    return environment().from_string(path.read_text()).render(**context)


def render_to(target: Path, template: str, **context: Any) -> Path:
    """Render a template into `target`, written whether or not it changed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render(template, **context))
    return target


def write_if_changed(path: Path, text: str) -> None:
    """Leave an identical file untouched."""
    if path.is_file() and path.read_text() == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def copy_if_changed(source: Path, dest: Path) -> None:
    if dest.is_file() and dest.read_bytes() == source.read_bytes():
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, dest)
