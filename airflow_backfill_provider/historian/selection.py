"""Which tags a run loads, and why not more: tag types and glob patterns, with nothing passing silently.

Pure functions with no Airflow import. :func:`select_from_types` applies the same glob filter as
:func:`~airflow_backfill_provider.historian.planning.select_tags` to the tags of each type and
reports what selected nothing: a tag type without tags and a pattern without a match are warnings;
a selection that keeps no tag at all is an error naming the types and patterns.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from airflow_backfill_provider.exceptions import ConfigurationError
from airflow_backfill_provider.historian.planning import select_tags

_GLOB_SPECIAL = re.compile(r"([*?\[])")
# Names quoted in one error: enough to act on.
_SHOWN = 10


def glob_escape(name: str) -> str:
    """A glob pattern that matches exactly ``name``: ``*``, ``?`` and ``[`` each inside brackets.

    ``100%_Done [Line-1]`` → ``100%_Done [[]Line-1]`` (a lone ``]`` is no special character).
    """
    return _GLOB_SPECIAL.sub(r"[\1]", name)


@dataclass(frozen=True)
class TagSelection:
    """The tags a run loads, with the parts of the selection that matched nothing."""

    tags: list[str]
    empty_types: tuple[str, ...]
    unmatched_include: tuple[str, ...]
    unmatched_exclude: tuple[str, ...]
    literal_hints: tuple[str, ...]

    def warnings(self) -> list[str]:
        """One sentence per part of the selection that selected nothing, for the task log."""
        out = []
        if self.empty_types:
            out.append(f"TagRef has no tags of type(s) {list(self.empty_types)}: they add nothing.")
        if self.unmatched_include:
            out.append(f"tag_include pattern(s) {list(self.unmatched_include)} match no tag.")
        if self.unmatched_exclude:
            out.append(f"tag_exclude pattern(s) {list(self.unmatched_exclude)} match no tag.")
        return out + list(self.literal_hints)


def select_from_types(
    tags_by_type: Mapping[str, Sequence[str]],
    include: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
) -> TagSelection:
    """Filter the tags of each type by ``include``/``exclude`` glob patterns (case-insensitive).

    :param tags_by_type: tag names per tag type, as discovered (``Sys*`` already left out if asked).
    :raises ConfigurationError: when no tag is left, naming the types, the patterns and, for a
        pattern that is an existing name with glob characters, the pattern that matches it literally.
    """
    every = sorted({t for names in tags_by_type.values() for t in names})
    include = [p for p in include or [] if p]
    exclude = [p for p in exclude or [] if p]
    selection = TagSelection(
        tags=select_tags(every, include, exclude),
        empty_types=tuple(t for t, names in tags_by_type.items() if not names),
        unmatched_include=tuple(p for p in include if not _matches_any(p, every)),
        unmatched_exclude=tuple(p for p in exclude if not _matches_any(p, every)),
        literal_hints=tuple(_literal_hint(p, every) for p in include + exclude if _literal_hint(p, every)),
    )
    if not selection.tags:
        raise ConfigurationError(_nothing_selected(tags_by_type, include, exclude, selection))
    return selection


def _matches_any(pattern: str, names: Sequence[str]) -> bool:
    folded = pattern.casefold()
    return any(fnmatch.fnmatchcase(n.casefold(), folded) for n in names)


def _literal_hint(pattern: str, names: Sequence[str]) -> str:
    """Advice when ``pattern`` is an existing tag name that its own glob characters stop matching."""
    if _matches_any(pattern, names) or not _GLOB_SPECIAL.search(pattern):
        return ""
    folded = pattern.casefold()
    if not any(n.casefold() == folded for n in names):
        return ""
    return (
        f"{pattern!r} is a tag name, but as a glob pattern '[...]' is a character class (and '*', '?' "
        f"wildcards): write {glob_escape(pattern)!r} to match that name exactly."
    )


def _nothing_selected(
    tags_by_type: Mapping[str, Sequence[str]],
    include: Sequence[str],
    exclude: Sequence[str],
    selection: TagSelection,
) -> str:
    types = list(tags_by_type)
    if not any(tags_by_type.values()):
        return (
            f"No tag to load: TagRef has no tags of the selected type(s) {types}. Choose other tag_types "
            "(analog, discrete, string, complex, event, summary), or check exclude_system_tags."
        )
    every = sorted({t for names in tags_by_type.values() for t in names})
    counts = ", ".join(f"{t} {len(n)}" for t, n in tags_by_type.items())
    included = select_tags(every, include, None)
    if not included:
        why = f"tag_include {list(include)} keeps none of them"
    elif include:
        why = f"tag_include {list(include)} keeps {len(included)} and tag_exclude {list(exclude)} drops them all"
    else:
        why = f"tag_exclude {list(exclude)} drops them all"
    hints = " ".join(selection.literal_hints) or (
        "Patterns are case-insensitive globs: '*' is any text, '?' one character, '[...]' a character "
        "class; write '[[]' for a literal '['."
    )
    return f"No tag to load: tag_types {types} have tags ({counts}), but {why}. {hints}"


def select_exact(known: Sequence[str], names: Sequence[str]) -> list[str]:
    """``names`` as given (exact, case-sensitive: no glob), in order; each must be in ``known``.

    :raises ConfigurationError: naming the names ``known`` lacks (with a case-insensitive match when
        there is one), so a typo never loads fewer tags in silence.
    """
    present = set(known)
    missing = [n for n in names if n not in present]
    if missing:
        by_fold = {k.casefold(): k for k in known}
        hints = [f"{n!r} (TagRef has {by_fold[n.casefold()]!r})" for n in missing if n.casefold() in by_fold]
        raise ConfigurationError(
            f"TagRef holds no tag named {', '.join(repr(n) for n in missing[:_SHOWN])}"
            + (f" and {len(missing) - _SHOWN} more" if len(missing) > _SHOWN else "")
            + ": the tags Param takes exact names, as TagRef spells them (case included)."
            + (f" Close: {', '.join(hints[:_SHOWN])}." if hints else "")
        )
    return list(dict.fromkeys(names))
