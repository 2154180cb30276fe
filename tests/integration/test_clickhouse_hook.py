"""ClickHouseBackfillHook in both of its modes, across processes.

Every test that takes ``ch_conn`` runs twice: embedded (chdb on a data directory, under the file
lock) and server (an ordinary ``clickhouse`` connection with host, port, login and password to
ClickHouse's HTTP interface, which ``tests/support/clickhouse_http.py`` puts in front of the same
engine in its own process: the suite's one stand-in, since no ClickHouse server can be installed
here). The server mode runs the hook's HTTP path for real: clickhouse-connect's sessions,
``insert_arrow``, query parameters, settings per query, compression and error codes.
"""

from __future__ import annotations

import json
import multiprocessing
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest

from airflow_backfill_provider.exceptions import ReconciliationError
from airflow_backfill_provider.historian.schema import HISTORY_COLUMN_NAMES, arrow_history_schema
from airflow_backfill_provider.historian.transfer import spool_batches

UTC = timezone.utc
T0 = datetime(2025, 3, 1, tzinfo=UTC)


@pytest.fixture
def ch_mode(clickhouse_conn) -> str:
    return "embedded" if clickhouse_conn["conn_type"] == "chdb" else "server"


@pytest.fixture
def ch_conn_json(clickhouse_conn) -> str:
    return json.dumps(clickhouse_conn)


@pytest.fixture
def ch_conn(monkeypatch, ch_conn_json):
    monkeypatch.setenv("AIRFLOW_CONN_CH_TEST", ch_conn_json)
    return "ch_test"


def history_batch(tags, start, n_per_tag, step=timedelta(minutes=1)):
    schema = arrow_history_schema()
    cols = {name: [] for name in HISTORY_COLUMN_NAMES}
    for tag in tags:
        for i in range(n_per_tag):
            for name in HISTORY_COLUMN_NAMES:
                cols[name].append(None)
            cols["DateTime"][-1] = start + i * step
            cols["TagName"][-1] = tag
            cols["Value"][-1] = float(i) if i % 5 else None
            cols["VValue"][-1] = str(i)
            cols["Quality"][-1] = 0
    return pa.RecordBatch.from_pydict(cols, schema=schema)


def spool(tmp_path, batch, name="s.arrows"):
    path = str(tmp_path / name)
    return path, spool_batches([batch], path, arrow_history_schema())


def hook(conn_id):
    from airflow_backfill_provider.hooks.clickhouse import ClickHouseBackfillHook

    return ClickHouseBackfillHook(clickhouse_conn_id=conn_id)


def test_history_table_ddl(ch_conn):
    h = hook(ch_conn)
    with h.session() as client:
        h.ensure_history_table(client, "WonderwareHistory")
        row = client.query(
            "SELECT engine, partition_key, sorting_key, create_table_query FROM system.tables "
            "WHERE name = 'WonderwareHistory'"
        ).result_rows[0]
        described = client.query("DESCRIBE TABLE WonderwareHistory").result_rows
    columns, types = [r[0] for r in described], {r[0]: r[1] for r in described}
    engine, partition_key, sorting_key, ddl = row
    assert engine == "MergeTree"
    assert partition_key == "toYYYYMM(DateTime)"
    assert sorting_key == "TagName, DateTime"
    assert "TTL" not in ddl
    assert columns == list(HISTORY_COLUMN_NAMES) and len(columns) == 33
    assert types["DateTime"] == "DateTime64(6, 'UTC')" and types["TagName"] == "LowCardinality(String)"
    assert types["wwRetrievalMode"] == types["wwUnit"] == "LowCardinality(Nullable(String))"
    assert types["VValue"] == "Nullable(String)"  # string tags' values: not a small set


def test_replace_window_is_idempotent_and_replaces_partial_writes(ch_conn, tmp_path):
    h = hook(ch_conn)
    tags = ["A", "B"]
    end = T0 + timedelta(hours=1)
    path, rows = spool(tmp_path, history_batch(tags, T0, 60))
    assert rows == 120
    first = h.replace_window(table="H", tags=tags, start=T0, end=end, spool_path=path, expected_rows=rows)
    assert first == {"replaced_rows": 0, "written_rows": 120}
    again = h.replace_window(table="H", tags=tags, start=T0, end=end, spool_path=path, expected_rows=rows)
    assert again == {"replaced_rows": 120, "written_rows": 120}
    # a neighbouring window and another tag stay untouched by a replace
    other, n_other = spool(tmp_path, history_batch(["C"], T0, 60), "other.arrows")
    h.replace_window(table="H", tags=["C"], start=T0, end=end, spool_path=other, expected_rows=n_other)
    with h.session() as client:
        # simulate an attempt that died after its first batch: half the rows of A already there
        client.insert_arrow("H", pa.Table.from_batches([history_batch(["A"], T0, 30)]))
        assert client.command("SELECT count() FROM H") == 120 + 60 + 30
    h.replace_window(table="H", tags=tags, start=T0, end=end, spool_path=path, expected_rows=rows)
    assert h.count_by_tag("H", ["A", "B", "C"], T0, end) == {"A": 60, "B": 60, "C": 60}
    with h.session() as client:
        assert client.command("SELECT count() FROM H") == 180  # plain count, no FINAL
        assert client.command("SELECT countIf(Value IS NULL) FROM H") == 3 * 12


def test_replace_window_reports_mismatch(ch_conn, tmp_path):
    h = hook(ch_conn)
    path, rows = spool(tmp_path, history_batch(["A"], T0, 10))
    with pytest.raises(
        ReconciliationError, match="holds 10 rows for 1 tags after the load, but the source gave 11"
    ):
        h.replace_window(
            table="H", tags=["A"], start=T0, end=T0 + timedelta(hours=1), spool_path=path, expected_rows=11
        )


def _write_window(conn_json, tag, path):
    import os

    os.environ["AIRFLOW_CONN_CH_MP"] = conn_json
    from airflow_backfill_provider.hooks.clickhouse import ClickHouseBackfillHook

    ClickHouseBackfillHook(clickhouse_conn_id="ch_mp").replace_window(
        table="H", tags=[tag], start=T0, end=T0 + timedelta(days=1), spool_path=path, expected_rows=500
    )


def test_several_processes_share_one_target(ch_conn_json, tmp_path, ch_conn):
    """Embedded: the processes take turns under the file lock; server: they write at once."""
    conn_json = ch_conn_json
    tags = [f"P{i}" for i in range(3)]
    paths = [spool(tmp_path, history_batch([t], T0, 500), f"{t}.arrows")[0] for t in tags]
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_write_window, args=(conn_json, t, p)) for t, p in zip(tags, paths, strict=False)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert hook(ch_conn).count_by_tag("H", tags, T0, T0 + timedelta(days=1)) == {t: 500 for t in tags}


def test_dbapi_path_and_test_connection(ch_conn, ch_mode):
    h = hook(ch_conn)
    ok, message = h.test_connection()
    assert ok and "Connected to ClickHouse 26." in message
    assert ("embedded chdb" in message) == (ch_mode == "embedded")
    if ch_mode == "server":
        assert f"ClickHouse at 127.0.0.1:{h.connection.port}" in message
    assert h.get_records("SELECT 1 + 1") == [(2,)]
    # the DB-API connection released the lock: a session opens at once
    with h.session() as client:
        assert client.command("SELECT 3") == 3


class ListSource:
    """A History source serving prepared batches (the reader is not under test here)."""

    def __init__(self, batches):
        self.batches = batches

    def iter_history_batches(self, tags, start, end, **kw):
        yield from self.batches


def counting_hook(conn_id, **overrides):
    """The real hook, counting the engine sessions it opens (optionally with methods replaced)."""
    from contextlib import contextmanager

    from airflow_backfill_provider.hooks.clickhouse import ClickHouseBackfillHook

    class Counting(ClickHouseBackfillHook):
        sessions = 0

        @contextmanager
        def session(self):
            type(self).sessions += 1
            with super().session() as client:
                yield client

    for name, fn in overrides.items():
        setattr(Counting, name, fn)
    return Counting(clickhouse_conn_id=conn_id)


def no_retry(fn, what):
    return fn()


def test_staged_load_commits_in_the_writers_session_with_compact_parts(ch_conn, tmp_path):
    from airflow_backfill_provider.historian.transfer import transfer_chunk

    tags = ["A", "B"]
    batches = [history_batch(tags, T0 + timedelta(hours=h), 30) for h in range(4)]  # 4 x 60 rows
    h = counting_hook(ch_conn)
    out = transfer_chunk(
        ListSource(batches),
        h,
        table="WonderwareHistory",
        tags=tags,
        start=T0,
        end=T0 + timedelta(days=1),
        batch_size=60,
        spool_rows=60,  # a spool file, an INSERT and a staged part per batch
        retry=no_retry,
        spool_dir=str(tmp_path),
    )
    assert out["staged"] and out["rows"] == 240
    # creating the stage, then one session for all four INSERTs and the commit (no second engine start)
    assert type(h).sessions == 2
    with h.session() as client:
        parts = client.query(
            "SELECT part_type, sum(rows) FROM system.parts WHERE active AND table = 'WonderwareHistory' "
            "GROUP BY part_type"
        ).result_rows
        stages = client.command("SELECT count() FROM system.tables WHERE name LIKE '_abp_stage_%'")
    assert parts == [("Compact", 240)]  # moved in as staged: one file per part, not two per column
    assert int(stages) == 0


def test_staged_commit_catches_a_concurrent_writer_and_leaves_no_stage(ch_conn, tmp_path):
    from airflow_backfill_provider.historian.transfer import transfer_chunk
    from airflow_backfill_provider.hooks.clickhouse import ClickHouseBackfillHook

    tags = ["A"]
    window = (T0, T0 + timedelta(days=1))
    stray = history_batch(tags, T0 + timedelta(hours=12, seconds=30), 1)

    def clear_then_someone_writes(self, client, table, tags, start, end, **kw):
        # another writer lands a row in the window between our delete and our move
        removed = ClickHouseBackfillHook._clear_window(self, client, table, tags, start, end, **kw)
        client.insert_arrow(table, pa.Table.from_batches([stray]))
        return removed

    h = counting_hook(ch_conn, _clear_window=clear_then_someone_writes)
    with pytest.raises(ReconciliationError, match="holds 31 rows .* the source gave 30"):
        transfer_chunk(
            ListSource([history_batch(tags, T0, 30)]),
            h,
            table="WonderwareHistory",
            tags=tags,
            start=window[0],
            end=window[1],
            batch_size=100,
            retry=no_retry,
            spool_dir=str(tmp_path),
        )
    with h.session() as client:
        stages = client.command("SELECT count() FROM system.tables WHERE name LIKE '_abp_stage_%'")
    assert int(stages) == 0
    assert list(tmp_path.glob("wonderware-chunk-*")) == []  # no spool left behind


def stage_tables(h) -> int:
    with h.session() as client:
        return int(client.command("SELECT count() FROM system.tables WHERE name LIKE '_abp_stage_%'"))


def test_stage_is_dropped_unless_committed_and_hands_its_session_back(ch_conn, tmp_path):
    h = counting_hook(ch_conn)
    path, rows = spool(tmp_path, history_batch(["A"], T0, 10))
    window = {"tags": ["A"], "start": T0, "end": T0 + timedelta(hours=1)}
    with h.stage("H", "chunk") as stage:
        stage.add(path)
    assert stage_tables(h) == 0  # left without a commit
    with pytest.raises(RuntimeError, match="boom"), h.stage("H", "chunk") as stage:
        stage.add(path)
        raise RuntimeError("boom")
    assert stage_tables(h) == 0 and h.count_by_tag("H", ["A"], T0, window["end"]) == {}
    type(h).sessions = 0
    with h.stage("H", "chunk") as stage:
        stage.idle_timeout = 0.0  # hold no session across files
        stage.add(path)
        stage.add(path)
        assert stage.commit(**window, expected_rows=2 * rows) == {"replaced_rows": 0, "written_rows": 20}
    assert type(h).sessions == 4  # create, one per file, the commit
    with h.stage("H", "chunk") as stage:
        stage.add(path)
        stage.idle()  # a pause in the read: the session goes back, the next step takes a new one
        assert stage.commit(**window, expected_rows=rows) == {"replaced_rows": 20, "written_rows": 10}
    assert type(h).sessions == 4 + 3 and stage_tables(h) == 0


def test_staged_retry_starts_from_an_empty_stage_and_a_refused_read_drops_it(ch_conn, tmp_path):
    from airflow_backfill_provider.exceptions import SourceUnavailableError
    from airflow_backfill_provider.historian.transfer import transfer_chunk

    tags = ["A", "B"]
    batches = [history_batch(tags, T0 + timedelta(hours=h), 30) for h in range(4)]

    class LosesConnectionOnce(ListSource):
        calls = 0

        def iter_history_batches(self, tags, start, end, **kw):
            type(self).calls += 1
            for i, batch in enumerate(self.batches):
                if type(self).calls == 1 and i == 2:
                    raise ConnectionError("injected")
                yield batch

    def retry_once(fn, what):
        try:
            return fn()
        except ConnectionError:
            return fn()

    def refuse(fn, what):
        raise SourceUnavailableError(f"{what}: refused")

    h = counting_hook(ch_conn)
    chunk = {"table": "WonderwareHistory", "tags": tags, "start": T0, "end": T0 + timedelta(days=1)}
    out = transfer_chunk(
        LosesConnectionOnce(batches),
        h,
        **chunk,
        batch_size=60,
        spool_rows=60,
        retry=retry_once,
        spool_dir=str(tmp_path),
    )
    assert out["staged"] and out["rows"] == 240 and LosesConnectionOnce.calls == 2
    assert h.count_by_tag("WonderwareHistory", tags, T0, chunk["end"]) == {"A": 120, "B": 120}
    with pytest.raises(SourceUnavailableError, match="refused"):
        transfer_chunk(ListSource(batches), h, **chunk, batch_size=60, retry=refuse, spool_dir=str(tmp_path))
    assert stage_tables(h) == 0 and list(tmp_path.glob("wonderware-chunk-*")) == []
    assert h.count_by_tag("WonderwareHistory", tags, T0, chunk["end"]) == {"A": 120, "B": 120}


# -- the chdb connection type, and engine errors that say which directory and why ----------------


def chdb_conn(monkeypatch, conn_id, path, conn_type="chdb"):
    extra = {"chdb_path": path} if path is not None else {}
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": conn_type, "extra": extra})
    )
    return conn_id


def test_chdb_connection_type_with_both_hooks(monkeypatch, chdb_path):
    from airflow_backfill_provider.hooks.clickhouse import ClickHouseBackfillHook, EmbeddedClickHouseHook

    conn_id = chdb_conn(monkeypatch, "ch_embedded", chdb_path)
    ok, message = EmbeddedClickHouseHook(conn_id).test_connection()
    assert ok and f"embedded chdb at {chdb_path!r}" in message and "ch_embedded" not in message
    h = ClickHouseBackfillHook(clickhouse_conn_id=conn_id)  # what the operators build
    assert h.chdb_path == chdb_path and h.get_records("SELECT 40 + 2") == [(42,)]


def test_chdb_connection_without_a_directory_says_so(monkeypatch):
    from airflow_backfill_provider.exceptions import ConfigurationError
    from airflow_backfill_provider.hooks.clickhouse import EmbeddedClickHouseHook

    hook = EmbeddedClickHouseHook(chdb_conn(monkeypatch, "ch_nodir", None))
    with pytest.raises(ConfigurationError, match="'ch_nodir' has no data directory"):
        _ = hook.chdb_path
    ok, message = hook.test_connection()
    assert not ok and "has no data directory" in message and "Data directory" in message


def test_engine_errors_name_the_directory(monkeypatch, chdb_path, tmp_path):
    from airflow_backfill_provider.hooks.clickhouse import ClickHouseEngineError, EmbeddedClickHouseHook

    hook = EmbeddedClickHouseHook(chdb_conn(monkeypatch, "ch_err", chdb_path))
    with pytest.raises(ClickHouseEngineError) as err, hook.session() as client:
        client.command("SELECT count() FROM NoSuchTable")
    assert f"embedded chdb at {chdb_path!r} (connection 'ch_err')" in str(err.value)
    assert "NoSuchTable" in str(err.value)
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory")
    ok, message = EmbeddedClickHouseHook(
        chdb_conn(monkeypatch, "ch_file", str(a_file / "db"))
    ).test_connection()
    assert not ok and str(a_file) in message and "not a directory" in message


def _without_dac_override() -> list[str]:
    """A command prefix under which file permissions apply: root normally bypasses them
    (CAP_DAC_OVERRIDE), so a chmod alone would not stop a test running as root."""
    import os
    import shutil

    if os.geteuid() != 0:
        return []
    if not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv (util-linux): cannot drop CAP_DAC_OVERRIDE")
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}"]


def _test_in_a_process(chdb_dir: str) -> dict:
    """Test the connection and open a session in a new process that file permissions apply to."""
    import os
    import subprocess
    import sys

    code = (
        "import json\n"
        "from airflow_backfill_provider.hooks.clickhouse import EmbeddedClickHouseHook\n"
        "hook = EmbeddedClickHouseHook('ch_ro')\n"
        "ok, message = hook.test_connection()\n"
        "try:\n"
        "    with hook.session() as client: client.command('SELECT 1')\n"
        "    raised = None\n"
        "except Exception as err:\n"
        "    raised = f'{type(err).__name__}: {err}'\n"
        "print(json.dumps({'ok': ok, 'message': message, 'raised': raised}))\n"
    )
    env = {
        **os.environ,
        "AIRFLOW_CONN_CH_RO": json.dumps({"conn_type": "chdb", "extra": {"chdb_path": chdb_dir}}),
    }
    out = subprocess.run(
        [*_without_dac_override(), sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_read_only_data_directory_says_permission_denied(chdb_path):
    """The engine alone says "Error initializing EmbeddedServer: . (BAD_ARGUMENTS)"."""
    import os

    os.makedirs(chdb_path)
    os.chmod(chdb_path, 0o555)
    try:
        result = _test_in_a_process(chdb_path)
    finally:
        os.chmod(chdb_path, 0o755)
    assert not result["ok"]
    for text in (result["message"], result["raised"]):
        assert f"cannot use its data directory {chdb_path!r}: permission denied" in text
        assert "read and write access" in text and "uid 0" in text if os.geteuid() == 0 else True
    assert result["raised"].startswith("ConfigurationError") and "(connection 'ch_ro')" in result["raised"]


def test_unwritable_parent_says_permission_denied_for_the_lock_file(tmp_path):
    """The lock file sits beside the data directory, so its parent must be writable too."""
    parent = tmp_path / "locked-parent"
    parent.mkdir(mode=0o555)
    try:
        result = _test_in_a_process(str(parent / "db"))
    finally:
        parent.chmod(0o755)
    assert not result["ok"] and "cannot create its lock file" in result["message"]
    assert f"{parent / 'db'}.lock" in result["message"] and "permission denied" in result["message"]
    assert result["raised"].startswith("ConfigurationError")


def test_a_deduplicating_table_still_takes_the_same_rows_again(ch_conn, tmp_path):
    """A table that deduplicates inserts (ReplicatedMergeTree does by default; a MergeTree with
    ``non_replicated_deduplication_window`` does too, and runs here) drops an INSERT whose block it
    has seen. Re-running a window deletes its rows and inserts the same blocks again: the load must
    not be deduplicated away, in ``replace_window`` or in a stage fed the same file twice."""
    h = hook(ch_conn)
    with h.session() as client:
        h.ensure_history_table(client, "H")
        client.command("ALTER TABLE H MODIFY SETTING non_replicated_deduplication_window = 100")
    path, rows = spool(tmp_path, history_batch(["A", "B"], T0, 60))
    window = {"tags": ["A", "B"], "start": T0, "end": T0 + timedelta(hours=1)}
    h.replace_window(table="H", **window, spool_path=path, expected_rows=rows)
    again = h.replace_window(table="H", **window, spool_path=path, expected_rows=rows)
    assert again == {"replaced_rows": rows, "written_rows": rows}
    with h.stage("H", "chunk") as stage:
        stage.add(path)
        stage.add(path)  # a spool file repeated: the stage holds what it was given, twice
        assert stage.commit(**window, expected_rows=2 * rows) == {
            "replaced_rows": rows,
            "written_rows": 2 * rows,
        }
    assert h.count_by_tag("H", ["A", "B"], T0, window["end"]) == {"A": 120, "B": 120}


def test_server_errors_name_the_server_and_carry_clickhouse_codes(monkeypatch, clickhouse_server):
    from airflow_backfill_provider.hooks.clickhouse import ClickHouseEngineError

    where = f"ClickHouse at 127.0.0.1:{clickhouse_server.port}"
    good = clickhouse_server.connection()
    monkeypatch.setenv("AIRFLOW_CONN_CH_BADPW", json.dumps({**good, "password": "not-the-password"}))
    ok, message = hook("ch_badpw").test_connection()
    assert not ok and message.startswith(f"{where}: ")
    assert "code: 516" in message and "AUTHENTICATION_FAILED" in message
    monkeypatch.setenv("AIRFLOW_CONN_CH_GOOD", json.dumps(good))
    with pytest.raises(ClickHouseEngineError) as err, hook("ch_good").session() as client:
        client.command("SELECT count() FROM NoSuchTable")
    assert f"{where} (connection 'ch_good')" in str(err.value) and "code: 60" in str(err.value)
    assert err.value.__cause__.code == 60  # the driver read X-ClickHouse-Exception-Code


def test_deduplication_is_turned_off_in_the_spelling_the_server_knows():
    from types import SimpleNamespace

    from airflow_backfill_provider.hooks._clickhouse_insert import no_deduplication

    before_26 = SimpleNamespace(server_settings={"insert_deduplicate": object()})
    assert no_deduplication(before_26) == {"insert_deduplicate": 0}
    since_26 = SimpleNamespace(server_settings=dict.fromkeys(["insert_deduplicate", "deduplicate_insert"]))
    assert no_deduplication(since_26) == {"deduplicate_insert": "disable"}
    since_26.server_settings["deduplicate_insert_select"] = None
    assert no_deduplication(since_26) == {
        "deduplicate_insert": "disable",
        "deduplicate_insert_select": "disable",
    }
