#!/usr/bin/env bash
# Import dashboards/ into a real Superset, the version docker-compose.yml builds, without Docker:
# Superset in a virtualenv of its own (its dependencies conflict with Airflow's), SQLite metadata,
# the steps of superset-init in its order, then the import again over itself. Prints what Superset
# holds after each step. Needs the package index (uv); not part of `make test`.
#
#   scripts/check_superset_import.sh [workdir]      # default: a new temp dir
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${1:-$(mktemp -d)}
UV="$ROOT/.tools/bin/uv"
VERSION=$(sed -n 's/^ *FROM apache\/superset:\([0-9.]*\).*/\1/p' "$ROOT/docker-compose.yml")
DRIVER=$(sed -n 's/.*psycopg2-binary==\([0-9.]*\).*/\1/p' "$ROOT/docker-compose.yml" | head -1)
echo "Superset $VERSION, psycopg2-binary $DRIVER, in $WORK"

[ -x "$WORK/venv/bin/superset" ] || {
  "$UV" venv -q --python python3.11 "$WORK/venv"
  # rich: imported by Superset's CLI but not declared by the 6.0.0 wheel
  "$UV" pip install -q --python "$WORK/venv/bin/python" "apache-superset==$VERSION" "psycopg2-binary==$DRIVER" rich
}
rm -f "$WORK/superset.db" "$WORK/vru_dashboards.zip"
cat > "$WORK/superset_config.py" <<EOF
SQLALCHEMY_DATABASE_URI = "sqlite:///$WORK/superset.db"
SECRET_KEY = "$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
EOF
export SUPERSET_CONFIG_PATH="$WORK/superset_config.py" SUPERSET_HOME="$WORK" FLASK_APP=superset
S="$WORK/venv/bin/superset"
LOG="$WORK/superset.log"

held() {
  python3 - "$WORK/superset.db" "$1" <<'EOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
one = lambda q: db.execute(q).fetchone()[0]
print(f"{sys.argv[2]}: databases {one('select count(*) from dbs')} "
      f"(password stored: {one('select count(*) from dbs where password is not null')}), "
      f"datasets {one('select count(*) from tables')} "
      f"(schemas: {','.join(sorted({r[0] for r in db.execute('select schema from tables')}))}), "
      f"columns {one('select count(*) from table_columns')}, charts {one('select count(*) from slices')}, "
      f"dashboards {one('select count(*) from dashboards')}, "
      f"charts on dashboards {one('select count(*) from dashboard_slices where dashboard_id is not null')}, "
      # a re-import leaves a link row whose dashboard is NULL (Superset 6.0.0's overwrite)
      f"orphan links {one('select count(*) from dashboard_slices where dashboard_id is null')}")
EOF
}

"$S" db upgrade >> "$LOG" 2>&1
"$S" fab create-admin --username admin --firstname Superset --lastname Admin --email admin@example.org \
  --password "$(python3 -c 'import secrets; print(secrets.token_hex(8))')" >> "$LOG" 2>&1
"$S" init >> "$LOG" 2>&1
(cd "$ROOT" && python3 -m zipfile -c "$WORK/vru_dashboards.zip" dashboards)
"$S" import-dashboards --path "$WORK/vru_dashboards.zip" --username admin >> "$LOG" 2>&1
held "imported"
"$S" set_database_uri -d warehouse -u "postgresql://vru_bi:$(python3 -c 'import secrets; print(secrets.token_hex(8))')@warehouse:5432/warehouse" >> "$LOG" 2>&1
held "password set"
"$S" import-dashboards --path "$WORK/vru_dashboards.zip" --username admin >> "$LOG" 2>&1
"$S" set_database_uri -d warehouse -u "postgresql://vru_bi:$(python3 -c 'import secrets; print(secrets.token_hex(8))')@warehouse:5432/warehouse" >> "$LOG" 2>&1
held "imported again"
echo "log: $LOG"
