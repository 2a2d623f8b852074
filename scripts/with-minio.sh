#!/usr/bin/env bash
# with-minio.sh CMD [ARG...]
#
# Runs CMD with a throwaway MinIO server on a free loopback port: a fresh data
# directory and freshly generated root credentials, a bucket named twoway-test,
# and in CMD's environment
#
#   TWOWAY_TEST_S3_URL     s3://twoway-test/?endpoint=http://127.0.0.1:PORT&region=us-east-1&path_style=true
#   AWS_ACCESS_KEY_ID      the generated root user
#   AWS_SECRET_ACCESS_KEY  the generated root password
#
# The AWS environment is otherwise isolated from the caller's (no profile, no
# shared config files, no instance metadata), so a developer's AWS setup can
# neither leak into the tests nor be touched by them. MinIO is stopped and its
# data removed when CMD ends, whatever way it ends. Exits with CMD's status.
#
# The MinIO binary is $MINIO, else .tools/bin/minio (make tools), else minio
# on PATH.
set -euo pipefail

if [ $# -eq 0 ]; then
  echo "usage: $0 CMD [ARG...]" >&2
  exit 2
fi

root=$(cd "$(dirname "$0")/.." && pwd)
minio=${MINIO:-}
if [ -z "$minio" ]; then
  if [ -x "$root/.tools/bin/minio" ]; then
    minio=$root/.tools/bin/minio
  elif command -v minio >/dev/null 2>&1; then
    minio=$(command -v minio)
  else
    echo "with-minio: no MinIO binary: run 'make tools' (or set MINIO=/path/to/minio)" >&2
    exit 1
  fi
fi
for tool in curl; do
  command -v "$tool" >/dev/null 2>&1 || { echo "with-minio: $tool is required" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/twoway-minio.XXXXXX")
log=$work/minio.log
pid=

cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
  echo "with-minio: $*" >&2
  if [ -s "$log" ]; then
    echo "with-minio: last lines of the MinIO log ($minio):" >&2
    tail -n 30 "$log" | sed 's/^/    /' >&2
  fi
  exit 1
}

random_hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

user=twoway$(random_hex 6)
password=$(random_hex 20)
bucket=twoway-test

# A port found free can be taken before MinIO binds it; then MinIO exits and
# another port is tried.
started=
for _ in $(seq 10); do
  port=$((20000 + RANDOM % 40000))
  port_in_use "$port" && continue
  rm -rf "$work/data"
  mkdir -p "$work/data"
  MINIO_ROOT_USER=$user MINIO_ROOT_PASSWORD=$password \
    MINIO_BROWSER=off MINIO_UPDATE=off \
    "$minio" server --quiet --address "127.0.0.1:$port" "$work/data" >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 300); do # up to 30 s
    if ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid" 2>/dev/null || true
      pid=
      break
    fi
    if curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$port/minio/health/live" 2>/dev/null; then
      started=1
      break
    fi
    sleep 0.1
  done
  [ -n "$started" ] && break
  if [ -n "$pid" ]; then
    fail "MinIO did not become ready on 127.0.0.1:$port within 30 s"
  fi
  grep -qi "address already in use\|port.*in use\|bind" "$log" || fail "MinIO exited during start-up"
done
[ -n "$started" ] || fail "could not start MinIO on a free loopback port after 10 tries"

endpoint=http://127.0.0.1:$port
# "live" answers before the object layer is initialized; until it is, S3
# calls get 503 XMinioServerNotInitialized. Retry the bucket creation.
for attempt in $(seq 100); do # up to ~20 s
  status=$(curl -sS -o "$work/mb.out" -w '%{http_code}' --max-time 10 -X PUT \
    --aws-sigv4 "aws:amz:us-east-1:s3" --user "$user:$password" "$endpoint/$bucket") ||
    fail "creating bucket $bucket: curl failed (curl 7.75 or later is needed for --aws-sigv4)"
  case $status in
    200) break ;;
    503) sleep 0.2 ;;
    *) fail "creating bucket $bucket: HTTP $status: $(cat "$work/mb.out")" ;;
  esac
done
[ "$status" = 200 ] || fail "creating bucket $bucket: MinIO still not initialized: HTTP $status: $(cat "$work/mb.out")"

unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_ENDPOINT_URL_S3 AWS_ROLE_ARN AWS_WEB_IDENTITY_TOKEN_FILE
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true
export AWS_ACCESS_KEY_ID=$user AWS_SECRET_ACCESS_KEY=$password AWS_REGION=us-east-1
export TWOWAY_TEST_S3_URL="s3://$bucket/?endpoint=$endpoint&region=us-east-1&path_style=true"
echo "with-minio: MinIO on $endpoint, TWOWAY_TEST_S3_URL=$TWOWAY_TEST_S3_URL" >&2

set +e
"$@"
rc=$?
set -e
exit $rc
