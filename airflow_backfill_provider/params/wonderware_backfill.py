"""Params of the ``wonderware_backfill`` DAG (documented in docs/wonderware-backfill.md)."""

from __future__ import annotations

from airflow.sdk import Param

from airflow_backfill_provider.historian.planning import MAX_TAG_GROUP_SIZE
from airflow_backfill_provider.historian.schema import DEFAULT_TAG_TYPES, TAG_TYPES
from airflow_backfill_provider.params import DURATION, instant_param, number_range, optional_list

WINDOW = "Explicit window (manual runs only)"
TAGS = "Tags"
CHUNKS = "Chunks and batches"
MODE = "Mode"
# The explicit window's (start, end) Params: both or neither, end after start.
WINDOW_PARAMS = ("range_start", "range_end")


def params() -> dict[str, Param]:
    """A fresh Params dict for the DAG (Param objects hold their value: never share them)."""
    return {
        "range_start": instant_param(
            "Window start",
            "Load this window instead of the run's data interval: its first instant (UTC unless it has "
            "an offset), e.g. `2025-01-01T00:00:00Z`. Set *Window end* too. **Manual runs only**: a "
            "backfill or scheduled run with it fails at once, since each of those loads its own "
            "interval; leave it empty in the Backfill dialog.",
            section=WINDOW,
        ),
        "range_end": instant_param(
            "Window end (exclusive)",
            "End of the explicit window, not included, after *Window start*, e.g. "
            "`2025-01-02T00:00:00Z` for the whole of 1 January 2025. **Manual runs only**, like "
            "*Window start*.",
            section=WINDOW,
        ),
        "tag_types": Param(
            list(DEFAULT_TAG_TYPES),
            type="array",
            title="Tag types",
            description_md="TagRef tag types to load, one or more, e.g. analog, discrete and string "
            "(the default). A type without tags is logged as a warning; a selection that keeps no "
            "tag fails the run.",
            items={"type": "string", "enum": list(TAG_TYPES)},
            # The form turns an array with `examples` into a multi-select of them.
            examples=list(TAG_TYPES),
            values_display={
                name: f"{name.capitalize()} (TagType {code})" for name, code in TAG_TYPES.items()
            },
            minItems=1,
            uniqueItems=True,
            section=TAGS,
        ),
        "tags": optional_list(
            "Exact tag names",
            "Load exactly these tags, one name per line, as TagRef spells them, e.g. "
            "`Boiler.Temp` or `100%_Done [Line-1]`: `*`, `?` and `[` are plain characters here. When "
            "set, *Tag types* and the glob patterns are not used, and a name TagRef does not hold "
            "fails the run, naming it. Empty (the default): select by type and pattern. The sync's "
            "retroactive backfill of new tags sets it.",
            items={"type": "string", "minLength": 1},
            uniqueItems=True,
            section=TAGS,
        ),
        "tag_include": optional_list(
            "Include tags (glob patterns)",
            "Keep only tags matching one of these glob patterns (case-insensitive), one "
            "per line, e.g. `Boiler*` or `Line1.*`; empty: every tag of the types. `*` is any text, "
            "`?` one character, `[...]` a character class: to match a `[` in a name write `[[]`, "
            "e.g. `100%_Done [[]Line-1]` for the tag `100%_Done [Line-1]`. A selection that keeps "
            "no tag fails the run, naming the patterns.",
            items={"type": "string", "minLength": 1},
            section=TAGS,
        ),
        "tag_exclude": optional_list(
            "Exclude tags (glob patterns)",
            "Leave out tags matching one of these glob patterns (case-insensitive), one "
            "per line, e.g. `*.Test` or `Line9.*`; the same pattern rules as *Include tags*.",
            items={"type": "string", "minLength": 1},
            section=TAGS,
        ),
        "exclude_system_tags": Param(
            True,
            type="boolean",
            title="Leave out system tags (Sys*)",
            description_md="On: leave out the historian's own `Sys*` tags (e.g. `SysTimeSec`). Off: "
            "load them too.",
            section=TAGS,
        ),
        # format "duration" makes the form check the value as it is typed (it checks no pattern).
        "chunk_window": Param(
            "PT6H",
            type="string",
            format="duration",
            pattern=DURATION,
            title="Chunk window",
            description_md="Length of each chunk's sub-window, an ISO 8601 duration, e.g. `PT6H` (6 hours), "
            "`PT30M`, `P1D` (not `6h` or `6 hours`). Rows per chunk ≈ tags per chunk × samples per "
            "tag per second × window seconds: aim for a few minutes of work per chunk.",
            section=CHUNKS,
        ),
        "tag_group_size": Param(
            50,
            type="integer",
            allOf=number_range(
                1, MAX_TAG_GROUP_SIZE, why="as SQL Server takes at most 2,100 parameters in one query"
            ),
            title="Tags per chunk",
            description_md=f"Tags per chunk, 1 to {MAX_TAG_GROUP_SIZE} (SQL Server takes at most "
            "2,100 parameters in one query), e.g. `50`.",
            section=CHUNKS,
        ),
        "batch_size": Param(
            50_000,
            type="integer",
            allOf=number_range(1000, 1_000_000, why="to bound the memory of a chunk"),
            title="Rows per source batch",
            description_md="Rows per batch read from the source, 1,000 to 1,000,000, e.g. `50000`: "
            "it bounds the memory of a chunk.",
            section=CHUNKS,
        ),
        "dry_run": Param(
            False,
            type="boolean",
            title="Dry run (count only, write nothing)",
            description_md="On: plan the chunks and count the source rows each would load; write "
            "nothing, emit no asset event. The run's summary reports the rows it would load, e.g. "
            "`Backfill DRY RUN: 4/4 chunks ok (success rate 100.0%), would load 103716 rows`.",
            section=MODE,
        ),
        "allow_empty": Param(
            False,
            type="boolean",
            title="Let an empty read clear the window",
            description_md="Off (the default): a chunk whose source read finds no row, over a window "
            "ClickHouse holds rows for, fails and leaves those rows (a source being reloaded or the "
            "wrong database looks just like that). On: the window is emptied, for history that was "
            "really deleted at the source, e.g. a tag's test data removed from the Historian.",
            section=MODE,
        ),
    }
