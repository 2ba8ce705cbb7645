"""`bxthre3 completion bash|zsh|fish`: shell completion scripts generated from the real argparse parser.

Generated, not hand-written, so a flag added to the CLI is completed the day it is added and a
removed one is never offered. The parser is first reduced to a plain tree (``Command``), then each
shell's script is printed from that tree. bash and zsh share the same small POSIX functions (tables
as ``case`` statements, and one walker that finds which subcommand the words typed so far select);
only the last step, offering candidates, is per shell. fish has its own declarative ``complete``.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field
from pathlib import Path

SHELLS = ("bash", "zsh", "fish")

FILE, DIR, DAG = "@file", "@dir", "@dag"
"""Value kinds other than a list of words: any file, a directory, a DAG file (*.yaml, *.yml)."""


@dataclass(frozen=True)
class Option:
    flags: tuple[str, ...]
    values: str | None
    """None: a switch (takes no value); else FILE, DIR, DAG, "" (free text) or the choices, space-separated."""
    help: str = ""


@dataclass
class Command:
    path: tuple[str, ...]
    help: str = ""
    options: list[Option] = field(default_factory=list)
    subcommands: dict[str, Command] = field(default_factory=dict)
    positionals: list[str] = field(default_factory=list)
    """Value kind of each positional argument, in order (FILE, DIR, DAG, "" or choices)."""

    def walk(self) -> list[Command]:
        """This command and every subcommand below it, depth first."""
        found = [self]
        for sub in self.subcommands.values():
            found += sub.walk()
        return found

    @property
    def key(self) -> str:
        return "/".join(self.path)


def describe(parser: argparse.ArgumentParser, path: tuple[str, ...] = (), help: str = "") -> Command:
    """The completion tree of an argparse parser (hidden options left out)."""
    command = Command(path, help)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                command.subcommands[name] = describe(sub, (*path, name), helps.get(name, ""))
        elif action.help == argparse.SUPPRESS:
            continue
        elif action.option_strings:
            takes = action.nargs != 0
            command.options.append(Option(tuple(action.option_strings), _kind(action) if takes else None,
                                          _one_line(action.help)))  # fmt: skip
        else:
            command.positionals.append(_kind(action))
    return command


def _kind(action: argparse.Action) -> str:
    """How to complete an action's value: its choices, a file, a directory, a DAG, or nothing."""
    if action.choices:
        return " ".join(str(c) for c in action.choices)
    dest = action.dest or ""
    if dest == "dag" and not action.option_strings:
        return DAG
    if dest.endswith("_dir") or action.metavar == "DIR":
        return DIR
    if action.type is Path or dest.endswith(("_file", "output")):
        return FILE
    return ""


def _one_line(text: str | None) -> str:
    """A help text as a short description: asides in parentheses and everything after a ';' dropped."""
    line = re.sub(r"\s*\([^()]*\)", "", " ".join((text or "").replace("%%", "%").split())).split("; ")[0]
    return line if len(line) <= 80 else line[:79].rsplit(" ", 1)[0] + "…"


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    """The completion script of ``shell`` for this parser."""
    tree = describe(parser)
    prog = parser.prog
    if shell == "bash":
        return _bash(tree, prog)
    if shell == "zsh":
        return _zsh(tree, prog)
    if shell == "fish":
        return _fish(tree, prog)
    raise ValueError(f"no completion for shell {shell!r}; choose one of {', '.join(SHELLS)}")


# ---------------------------------------------------------------------- bash and zsh


def _sh_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def _case(name: str, doc: str, args: str, arms: list[tuple[list[str], str]], fallback: str = "") -> str:
    """A shell function that is one ``case`` over its arguments (a table lookup)."""
    lines = [f"# {doc}", f"{name}() {{", f'    case "{args}" in']
    for patterns, body in arms:
        lines.append(f"        {'|'.join(_sh_quote(p) for p in patterns)}) {body} ;;")
    if fallback:
        lines.append(f"        *) {fallback} ;;")
    lines += ["    esac", "}", ""]
    return "\n".join(lines)


def _shared(tree: Command, fn: str) -> str:
    """The tables and the walker, valid in bash and in zsh alike."""
    commands = tree.walk()
    subs = [([c.key], f"echo {_sh_quote(' '.join(c.subcommands))}") for c in commands if c.subcommands]
    opts = [([c.key], f"echo {_sh_quote(' '.join(f for o in c.options for f in o.flags))}") for c in commands]
    takes = [f"{c.key}|{flag}" for c in commands for o in c.options if o.values is not None for flag in o.flags]
    values = [
        ([f"{c.key}|{flag}" for flag in o.flags], f"echo {_sh_quote(o.values)}")
        for c in commands
        for o in c.options
        if o.values
    ]
    positionals = [
        ([f"{c.key}|{i}"], f"echo {_sh_quote(kind)}") for c in commands for i, kind in enumerate(c.positionals) if kind
    ]
    parts = [
        _case(f"{fn}_subs", "_subs PATH: the subcommands of a command path", "$1", subs),
        _case(f"{fn}_opts", "_opts PATH: the flags of a command path", "$1", opts),
        _case(
            f"{fn}_takes",
            "_takes PATH FLAG: does FLAG take a value?",
            "$1|$2",
            [(takes, "return 0")] if takes else [],
            "return 1",
        ),  # fmt: skip
        _case(f"{fn}_values", "_values PATH FLAG: choices, or @file, @dir, @dag", "$1|$2", values),
        _case(f"{fn}_positional", "_positional PATH N: what the Nth argument is", "$1|$2", positionals),
        f"""# _walk WORD...: sets _bx_path (the subcommands the words select, joined by /), _bx_pending (a flag
# still waiting for its value) and _bx_npos (positional arguments given to the command so far).
{fn}_walk() {{
    _bx_path="" _bx_pending="" _bx_npos=0
    local w subs
    for w in "$@"; do
        if [ "$w" = "=" ]; then continue; fi
        if [ -n "$_bx_pending" ]; then _bx_pending=""; continue; fi
        case "$w" in
            --*=*) continue ;;
            -*) if {fn}_takes "$_bx_path" "$w"; then _bx_pending="$w"; fi; continue ;;
        esac
        subs=" $({fn}_subs "$_bx_path") "
        case "$subs" in
            *" $w "*) _bx_path="${{_bx_path:+$_bx_path/}}$w"; _bx_npos=0 ;;
            *) _bx_npos=$((_bx_npos + 1)) ;;
        esac
    done
}}

# _kind CUR: what the word being typed can be (after _walk)
{fn}_kind() {{
    if [ -n "$_bx_pending" ]; then {fn}_values "$_bx_path" "$_bx_pending"; return; fi
    case "$1" in
        -*) {fn}_opts "$_bx_path"; return ;;
    esac
    local subs
    subs=$({fn}_subs "$_bx_path")
    if [ -n "$subs" ]; then echo "$subs"; else {fn}_positional "$_bx_path" "$_bx_npos"; fi
}}
""",
    ]
    return "\n".join(parts)


def _bash(tree: Command, prog: str) -> str:
    fn = "_" + prog.replace("-", "_")
    return f"""# bash completion for {prog}, generated by `{prog} completion bash` from its own parser.
# Load it with:  eval "$({prog} completion bash)"   (e.g. in ~/.bashrc), or save it as
# ~/.local/share/bash-completion/completions/{prog}

{_shared(tree, fn)}
# _candidates KIND CUR: the completions of CUR, one a line
{fn}_candidates() {{
    local IFS=$' \\t\\n'
    case "$1" in
        "") ;;
        @file) compgen -f -- "$2" ;;
        @dir) compgen -d -- "$2" ;;
        @dag) compgen -d -- "$2"; compgen -f -X '!*.yaml' -- "$2"; compgen -f -X '!*.yml' -- "$2" ;;
        *) compgen -W "$1" -- "$2" ;;
    esac
}}

{fn}() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" kind
    [ "$cur" = "=" ] && cur=""
    {fn}_walk "${{COMP_WORDS[@]:1:COMP_CWORD-1}}"
    kind=$({fn}_kind "$cur")
    case "$kind" in @*) compopt -o filenames 2>/dev/null ;; esac
    local IFS=$'\\n'
    COMPREPLY=($({fn}_candidates "$kind" "$cur"))
}}

complete -F {fn} {prog}
"""


def _zsh(tree: Command, prog: str) -> str:
    fn = "_" + prog.replace("-", "_")
    return f"""#compdef {prog}
# zsh completion for {prog}, generated by `{prog} completion zsh` from its own parser.
# Save it as _{prog} in a directory of $fpath (before compinit runs), or after compinit:
#   source <({prog} completion zsh)

{_shared(tree, fn)}
{fn}() {{
    local cur="${{words[CURRENT]}}" kind
    {fn}_walk "${{(@)words[2,CURRENT-1]}}"
    kind=$({fn}_kind "$cur")
    case "$kind" in
        "") return 1 ;;
        @file) _files ;;
        @dir) _files -/ ;;
        @dag) _files -g '*.(yaml|yml)' ;;
        *) compadd -- ${{=kind}} ;;
    esac
}}

if [[ "${{zsh_eval_context[-1]}}" == loadautofunc ]]; then
    {fn} "$@"
else
    compdef {fn} {prog}
fi
"""


# ---------------------------------------------------------------------- fish


def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _fish(tree: Command, prog: str) -> str:
    lines = [
        f"# fish completion for {prog}, generated by `{prog} completion fish` from its own parser.",
        f"# Save it as ~/.config/fish/completions/{prog}.fish",
        f"complete -c {prog} -e",
    ]
    for command in tree.walk():
        if not command.path:
            condition = "__fish_use_subcommand"
        else:
            condition = "; and ".join(f"__fish_seen_subcommand_from {name}" for name in command.path)
            if command.subcommands:
                condition += f"; and not __fish_seen_subcommand_from {' '.join(command.subcommands)}"
        n = f"-n {_fish_quote(condition)}"
        for name, sub in command.subcommands.items():
            lines.append(f"complete -c {prog} -f {n} -a {_fish_quote(name)} -d {_fish_quote(_one_line(sub.help))}")
        for option in command.options:
            flags = " ".join(f"-l {f[2:]}" if f.startswith("--") else f"-s {f[1:]}" for f in option.flags if len(f) > 1)
            lines.append(f"complete -c {prog} {n} {flags}{_fish_value(option.values)} -d {_fish_quote(option.help)}")
        for kind in command.positionals[:1]:  # fish completes files by default; only choices need saying
            if kind and not kind.startswith("@"):
                lines.append(f"complete -c {prog} -f {n} -a {_fish_quote(kind)}")
    return "\n".join(lines) + "\n"


def _fish_value(kind: str | None) -> str:
    if kind is None:
        return ""
    if kind == DIR:
        return " -r -f -a '(__fish_complete_directories)'"
    if kind in (FILE, DAG):
        return " -r -F"
    if kind:
        return f" -r -f -a {_fish_quote(kind)}"
    return " -r -f"
