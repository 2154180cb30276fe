"""Tag selection by type and glob pattern: nothing selected passes silently."""

from __future__ import annotations

import fnmatch

import pytest

from airflow_backfill_provider.exceptions import ConfigurationError
from airflow_backfill_provider.historian.selection import glob_escape, select_from_types

BRACKETED = "100%_Done [Line-1]"
BY_TYPE = {
    "analog": ["Boiler.Temp", "boiler.Pressure", BRACKETED],
    "discrete": ["Pump.State"],
    "summary": [],
}


def test_selection_keeps_matching_tags_and_warns_about_what_matched_nothing():
    selection = select_from_types(BY_TYPE, include=["boiler.*", "Mixer*"], exclude=["*.pressure", "Nope*"])
    assert selection.tags == ["Boiler.Temp"]
    assert selection.warnings() == [
        "TagRef has no tags of type(s) ['summary']: they add nothing.",
        "tag_include pattern(s) ['Mixer*'] match no tag.",
        "tag_exclude pattern(s) ['Nope*'] match no tag.",
    ]


def test_no_patterns_keep_every_tag_without_warnings():
    selection = select_from_types({"analog": ["b", "a"], "string": ["c"]})
    assert (selection.tags, selection.warnings()) == (["a", "b", "c"], [])


def test_an_exact_name_with_glob_characters_fails_and_says_how_to_match_it():
    with pytest.raises(ConfigurationError) as err:
        select_from_types(BY_TYPE, include=[BRACKETED])
    assert str(err.value) == (
        "No tag to load: tag_types ['analog', 'discrete', 'summary'] have tags (analog 3, discrete 1, "
        f"summary 0), but tag_include [{BRACKETED!r}] keeps none of them. {BRACKETED!r} is a tag name, "
        "but as a glob pattern '[...]' is a character class (and '*', '?' wildcards): write "
        "'100%_Done [[]Line-1]' to match that name exactly."
    )
    assert select_from_types(BY_TYPE, include=["100%_Done [[]Line-1]"]).tags == [BRACKETED]


def test_the_literal_hint_is_a_warning_when_other_patterns_matched():
    selection = select_from_types(BY_TYPE, include=["Pump*", BRACKETED])
    assert selection.tags == ["Pump.State"]
    assert any("write '100%_Done [[]Line-1]'" in w for w in selection.warnings())


@pytest.mark.parametrize(
    "include, exclude, why",
    [
        (
            ["Mixer*"],
            [],
            "but tag_include ['Mixer*'] keeps none of them. Patterns are case-insensitive globs",
        ),
        (["boiler*"], ["*"], "but tag_include ['boiler*'] keeps 2 and tag_exclude ['*'] drops them all."),
        ([], ["*"], "but tag_exclude ['*'] drops them all."),
    ],
)
def test_a_selection_that_keeps_nothing_names_the_patterns(include, exclude, why):
    with pytest.raises(ConfigurationError) as err:
        select_from_types(BY_TYPE, include, exclude)
    assert why in str(err.value)


def test_types_without_any_tag_fail_naming_the_types():
    with pytest.raises(ConfigurationError) as err:
        select_from_types({"event": [], "summary": []})
    assert str(err.value) == (
        "No tag to load: TagRef has no tags of the selected type(s) ['event', 'summary']. Choose other "
        "tag_types (analog, discrete, string, complex, event, summary), or check exclude_system_tags."
    )


@pytest.mark.parametrize("name", [BRACKETED, "a*b", "what?", "[x]", "plain.Name", "O'Brien\"; DROP --"])
def test_glob_escape_matches_exactly_the_name(name):
    pattern = glob_escape(name)
    assert fnmatch.fnmatchcase(name, pattern)
    assert not fnmatch.fnmatchcase(name + "x", pattern)
    if any(c in name for c in "*?["):
        assert not fnmatch.fnmatchcase("x" * len(name), pattern)


def test_exact_names_keep_glob_characters_and_name_what_tagref_lacks():
    from airflow_backfill_provider.historian.selection import select_exact

    known = ["100%_Done [Line-1]", "Boiler*Temp", "Line1.Speed"]
    assert select_exact(known, ["Boiler*Temp", "100%_Done [Line-1]", "Boiler*Temp"]) == [
        "Boiler*Temp",
        "100%_Done [Line-1]",
    ]
    with pytest.raises(ConfigurationError) as err:
        select_exact(known, ["line1.speed", "Nope?"])
    message = str(err.value)
    assert "TagRef holds no tag named 'line1.speed', 'Nope?'" in message
    assert "Close: 'line1.speed' (TagRef has 'Line1.Speed')" in message
