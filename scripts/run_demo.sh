#!/usr/bin/env bash
# The main job on the embedded default (SQLite, no servers): build the demo warehouse (the
# generated province's history), run the daily DAG for the last day through `airflow dags test`,
# and print a short summary. Called by `make run`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BIN="$ROOT/${VENV:-.venv}/bin"
export HOTLINE_VAR_DIR="${HOTLINE_VAR_DIR:-$ROOT/var}"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$HOTLINE_VAR_DIR/airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__UNIT_TEST_MODE=False
mkdir -p "$HOTLINE_VAR_DIR" "$AIRFLOW_HOME"

# The last day: yesterday in Asia/Shanghai, unless DEMO_DAY is set.
DAY="${DEMO_DAY:-$(TZ=Asia/Shanghai date -d yesterday +%F)}"
# The demo's planted events (config/hotline.yaml source.planted_events) are dated back from it.
export HOTLINE_DEMO_DAY="$DAY"

if [ -z "${HOTLINE_DB_URL:-}" ]; then
  rm -f "$HOTLINE_VAR_DIR"/hotline.db "$HOTLINE_VAR_DIR"/hotline.db-wal "$HOTLINE_VAR_DIR"/hotline.db-shm
  rm -rf "$HOTLINE_VAR_DIR"/notices "$HOTLINE_VAR_DIR"/reports/alerts
fi

# Airflow's own metadata database is independent of the warehouse: migrate it on the other core
# while the demo builds.
"$BIN/airflow" db migrate > "$HOTLINE_VAR_DIR/airflow_db_migrate.log" 2>&1 &
MIGRATE=$!

echo "== 1/3 demo warehouse: history up to the day before $DAY"
"$BIN/hotline" demo --end "$DAY" --days "${DEMO_HISTORY_DAYS:-560}" \
  --ticket-days "${DEMO_TICKET_DAYS:-60}" --detect-days "${DEMO_DETECT_DAYS:-0}"

echo "== 2/3 daily DAG for $DAY (airflow dags test, SQLite, no services)"
LOG="$HOTLINE_VAR_DIR/dags_test_hotline_daily_$DAY.log"
if ! wait "$MIGRATE"; then
  echo "airflow db migrate failed; see $HOTLINE_VAR_DIR/airflow_db_migrate.log" >&2
  tail -20 "$HOTLINE_VAR_DIR/airflow_db_migrate.log" >&2
  exit 1
fi
if ! "$BIN/airflow" dags test hotline_daily "$DAY" --conf "{\"day\": \"$DAY\"}" > "$LOG" 2>&1 \
   || ! grep -q "DagRun Finished: dag_id=hotline_daily.*state=success" "$LOG"; then
  echo "the daily DAG did not succeed; last lines of $LOG:" >&2
  tail -40 "$LOG" >&2
  exit 1
fi
grep -E "^(ingest |data quality |published: |forecast |detect |notify: (alerts|notices)|  )" "$LOG" | sed 's/^/   task: /'
echo "   DAG run: success (log: $LOG)"

echo "== 3/3 summary"
"$BIN/hotline" summary --date "$DAY"
echo
echo "== notices for $DAY (written to the demo's file channel, $HOTLINE_VAR_DIR/notices/$DAY.md)"
if [ -s "$HOTLINE_VAR_DIR/notices/$DAY.md" ]; then
  cat "$HOTLINE_VAR_DIR/notices/$DAY.md"
else
  echo "   no notice for $DAY"
fi
"$BIN/hotline" alerts outbox --date "$DAY" | head -1
