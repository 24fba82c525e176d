#!/usr/bin/env bash
# The main job on the embedded default (SQLite, no servers): build the demo warehouse (the
# generated province's history), run the daily DAG for the last day through `airflow dags test`,
# print a short summary, the 每月一题 proposal and the horse race (赛马) for the last full month and
# the warning board's path.
# Called by `make run`.
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
  rm -rf "$HOTLINE_VAR_DIR"/notices "$HOTLINE_VAR_DIR"/reports/alerts "$HOTLINE_VAR_DIR"/reports/proposals "$HOTLINE_VAR_DIR"/reports/ranking \
    "$HOTLINE_VAR_DIR"/site
fi

# Airflow's own metadata database is independent of the warehouse: migrate it on the other core
# while the demo builds.
"$BIN/airflow" db migrate > "$HOTLINE_VAR_DIR/airflow_db_migrate.log" 2>&1 &
MIGRATE=$!

echo "== 1/5 demo warehouse: history up to the day before $DAY"
"$BIN/hotline" demo --end "$DAY" --days "${DEMO_HISTORY_DAYS:-660}" \
  --ticket-days "${DEMO_TICKET_DAYS:-85}" --detect-days "${DEMO_DETECT_DAYS:-0}"

# The issue of the month for the last full month before the day (the monthly DAG's job), so that
# the board the daily run builds shows it.
MONTH=$(date -d "$(date -d "$DAY" +%Y-%m-01) -1 day" +%Y-%m)
echo "== 2/5 每月一题 (issue of the month) from the $MONTH data"
PLOG="$HOTLINE_VAR_DIR/propose_$MONTH.log"
"$BIN/hotline" propose --month "$MONTH" --top 5 > "$PLOG"
sed -n '/^[^ ].*(440000)/,$p' "$PLOG"
echo "   (every city's proposal: $PLOG)"

echo "== 3/5 赛马排名 (horse race) and the province's brief for $MONTH"
RLOG="$HOTLINE_VAR_DIR/ranking_$MONTH.log"
"$BIN/hotline" ranking --month "$MONTH" > "$RLOG"
sed -e '/^  report: /d' -e 's/^/   /' "$RLOG"

echo "== 4/5 daily DAG for $DAY (airflow dags test, SQLite, no services)"
LOG="$HOTLINE_VAR_DIR/dags_test_hotline_daily_$DAY.log"
if ! wait "$MIGRATE"; then
  echo "airflow db migrate failed; see $HOTLINE_VAR_DIR/airflow_db_migrate.log" >&2
  tail -20 "$HOTLINE_VAR_DIR/airflow_db_migrate.log" >&2
  exit 1
fi
# `airflow dags test` has no scheduler to watch the daily deadline (and Airflow 3.3.2's dags test
# fails on a DAG with one): the demo runs without it (hotline/operations.py)
if ! HOTLINE_DAILY_DEADLINE=off "$BIN/airflow" dags test hotline_daily "$DAY" --conf "{\"day\": \"$DAY\"}" > "$LOG" 2>&1 \
   || ! grep -q "DagRun Finished: dag_id=hotline_daily.*state=success" "$LOG"; then
  echo "the daily DAG did not succeed; last lines of $LOG:" >&2
  tail -40 "$LOG" >&2
  exit 1
fi
# the tasks log through `logging` (logger hotline.daily); their messages, without Airflow's prefix
sed -nE 's/^[^ ]+ \[(info|warning) *\] (.*[^ ]) +\[hotline\.daily\] .*$/\2/p' "$LOG" \
  | grep -E "^(ingest |data quality |published: |forecast |detect |notify: (alerts|notices)|lights: |board: |  )" \
  | sed 's/^/   task: /'
echo "   DAG run: success (log: $LOG)"

echo "== 5/5 summary"
"$BIN/hotline" summary --date "$DAY"
echo
echo "== notices for $DAY (written to the demo's file channel, $HOTLINE_VAR_DIR/notices/$DAY.md)"
if [ -s "$HOTLINE_VAR_DIR/notices/$DAY.md" ]; then
  # the alert notices in full; of the districts' lists of yellow and red tickets (红黄灯日报), the first
  "$BIN/python" - "$HOTLINE_VAR_DIR/notices/$DAY.md" <<'PY'
import sys
blocks = [b.strip() for b in open(sys.argv[1], encoding="utf-8").read().split("\n---\n") if b.strip()]
lists = [b for b in blocks if "【红黄灯日报】" in b]
for b in blocks:
    if b not in lists:
        print(b + "\n")
if lists:
    print(lists[0] + "\n")
    print(f"(and {len(lists) - 1} more lists of yellow and red tickets, one per district office, in the same file)")
PY
else
  echo "   no notice for $DAY"
fi
"$BIN/hotline" alerts outbox --date "$DAY" > "$HOTLINE_VAR_DIR/outbox_$DAY.txt"  # (head alone would cut the pipe)
head -1 "$HOTLINE_VAR_DIR/outbox_$DAY.txt"
echo
echo "== open in a browser (offline pages, no server)"
echo "   warning board:     $HOTLINE_VAR_DIR/site/index.html"
echo "   latest proposal:   $HOTLINE_VAR_DIR/reports/proposals/$MONTH/440000.zh.html (English: 440000.en.html, Markdown: .md)"
echo "   horse race:        $HOTLINE_VAR_DIR/reports/ranking/$MONTH/province-440000.zh.html (English: .en.html)"
for f in "$HOTLINE_VAR_DIR/site/index.html" "$HOTLINE_VAR_DIR/reports/proposals/$MONTH/440000.zh.html" \
         "$HOTLINE_VAR_DIR/reports/ranking/$MONTH/province-440000.zh.html"; do
  [ -s "$f" ] || { echo "missing: $f" >&2; exit 1; }
done

echo
echo "== the served site: each office signs in, acknowledges, silences and exports from the page"
if [ -z "${HOTLINE_DB_URL:-}" ]; then
  # three demo accounts on the demo warehouse, one password made for this run (var/demo-accounts.txt)
  DEMO_PASSWORD=$("$BIN/python" -c 'import secrets; print(secrets.token_urlsafe(12))')
  export DEMO_PASSWORD
  for acct in "demo-baoan district:440306 宝安区" "demo-shenzhen city:440300 深圳市" \
              "demo-guangdong province:440000 广东省"; do
    set -- $acct
    "$BIN/hotline" users add "$1" --office "$2" --name "$3 demo" --password-env DEMO_PASSWORD --by demo > /dev/null
  done
  ( umask 077; printf 'demo-baoan demo-shenzhen demo-guangdong: %s\n' "$DEMO_PASSWORD" > "$HOTLINE_VAR_DIR/demo-accounts.txt" )
  echo "   serve it:   make serve    (or: $BIN/hotline serve)"
  echo "   then open:  http://127.0.0.1:8765/"
  echo "   sign in as: demo-baoan (宝安区 district office), demo-shenzhen (深圳市 city centre) or"
  echo "               demo-guangdong (广东省 province), password $DEMO_PASSWORD (this run's; also in $HOTLINE_VAR_DIR/demo-accounts.txt)"
else
  echo "   serve it:   $BIN/hotline serve   ->  http://127.0.0.1:8765/  (accounts: hotline users add NAME --office district:CODE)"
fi
