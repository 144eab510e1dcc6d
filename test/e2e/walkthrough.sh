#!/usr/bin/env bash
# The App Connect public API walkthrough, with curl and jq, against a real
# `sluice serve`: the same calls a script written for App Connect makes.
# Inputs (environment): SLUICE (endpoint), CREDS (initial-credentials.json),
# EXT_BAR_URL (an https BAR behind basic auth), EXT_USER, EXT_PASS, EXT_CA
# (PEM file of the https server's CA), SECOND_BAR (path of a second BAR).
set -euo pipefail

fail() { echo "walkthrough: FAIL: $*" >&2; exit 1; }
step() { echo "walkthrough: $*"; }

CID=$(jq -r .clientId "$CREDS")
CSECRET=$(jq -r .clientSecret "$CREDS")
INST=$(jq -r .instanceId "$CREDS")
APIKEY=$(jq -r .apiKey "$CREDS")

step "1. token"
TOKEN=$(curl -sS --fail-with-body -X POST "$SLUICE/api/v1/tokens" \
  -H "X-IBM-Client-Id: $CID" -H "X-IBM-Client-Secret: $CSECRET" -H "x-ibm-instance-id: $INST" \
  -H 'content-type: application/json' -H 'accept: application/json' \
  -d "{\"apiKey\": \"$APIKEY\"}" | jq -r .access_token)
[ -n "$TOKEN" ] && [ "$TOKEN" != null ] || fail "no access token"
api() { curl -sS -H "Authorization: Bearer $TOKEN" -H "X-IBM-Client-Id: $CID" -H "x-ibm-instance-id: $INST" -H 'accept: application/json' "$@"; }

step "2. barauth configuration"
# appliesTo binds the credentials to the repository: no other barURL gets them.
AUTH=$(jq -cn --arg u "$EXT_USER" --arg p "$EXT_PASS" --rawfile ca "$EXT_CA" --arg repo "${EXT_BAR_URL%/*}/" \
  '{authType:"BASIC_AUTH",credentials:{username:$u,password:$p,caCert:$ca},appliesTo:[$repo]}' | base64 -w0)
api --fail-with-body -X PUT "$SLUICE/api/v1/configurations/ext-auth" -H 'content-type: application/json' \
  -d "{\"metadata\":{\"name\":\"ext-auth\"},\"spec\":{\"type\":\"barauth\",\"description\":\"https BAR repo\",\"data\":\"$AUTH\"}}" >/dev/null

step "2b. egress allow-list: the local BAR repository and the orders backend (local addresses are closed by default)"
REPO=$(echo "$EXT_BAR_URL" | sed -E 's#^https://([^/]+)/.*#\1#')
api --fail-with-body -X PUT "$SLUICE/api/v1/egress-policy" -H 'content-type: application/json' \
  -d "$(jq -cn --arg repo "$REPO" '{allow:[$repo,"127.0.0.1:9"]}')" | jq -e --arg repo "$REPO" '.allow == [$repo,"127.0.0.1:9"]' >/dev/null \
  || fail "egress allow-list not stored"

step "3. runtime 1 from the external https BAR"
api --fail-with-body -X PUT "$SLUICE/api/v1/integration-runtimes/ir1" -H 'content-type: application/json' -d "$(jq -cn --arg url "$EXT_BAR_URL" \
  '{metadata:{name:"ir1"},spec:{template:{spec:{containers:[{name:"runtime"}]}},barURL:[$url],configurations:["ext-auth"],version:"13.0",replicas:1}}')" >/dev/null

wait_ready() { # name, flow path expected in endpoints
  for _ in $(seq 1 120); do
    body=$(api "$SLUICE/api/v1/integration-runtimes/$1")
    phase=$(echo "$body" | jq -r .status.phase)
    if [ "$phase" = Ready ] && echo "$body" | jq -e --arg p "$2" '.status.endpoints[] | select(.uri | contains($p))' >/dev/null; then
      echo "$body"; return 0
    fi
    sleep 0.5
  done
  fail "runtime $1 not Ready with $2: $body"
}
IR1=$(wait_ready ir1 /hello/)
echo "$IR1" | grep -q supportsTraceCustomResource || fail "runtime object lacks supportsTraceCustomResource"
echo "$IR1" | jq -r '.status.conditions[].lastTransitionTime' | grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$' || fail "lastTransitionTime format"
HELLO=$(echo "$IR1" | jq -r '.status.endpoints[] | select(.uri | contains("/hello/")) | .uri' | head -n1)

step "4. call the flow's endpoint"
GREETING=$(curl -sS --fail-with-body "${HELLO/\{name\}/walkthrough}")
echo "$GREETING" | grep -q walkthrough || fail "flow answered $GREETING"

step "5. upload a second BAR"
URL=$(api --fail-with-body -X PUT "$SLUICE/api/v1/bar-files/second" -H 'Content-Type: application/octet-stream' --data-binary "@$SECOND_BAR" | jq -r .url)
[ -n "$URL" ] && [ "$URL" != null ] || fail "no url from the BAR upload"

step "6. runtime 2 from its url, with the configurations the orders flows need"
put_config() { # name type data
  api --fail-with-body -X PUT "$SLUICE/api/v1/configurations/$1" -H 'content-type: application/json' \
    -d "{\"metadata\":{\"name\":\"$1\"},\"spec\":{\"type\":\"$2\",\"data\":\"$(printf '%b' "$3" | base64 -w0)\"}}" >/dev/null
}
put_config orders-creds setdbparms 'backend order-user order-pass-81c\nbackend-token token tok-5e2\n'
put_config orders-conf serverconf 'values:\n  backendURL: http://127.0.0.1:9\n  pricingURL: http://127.0.0.1:9\n'
api --fail-with-body -X PUT "$SLUICE/api/v1/integration-runtimes/ir2" -H 'content-type: application/json' \
  -d "$(jq -cn --arg url "$URL" '{metadata:{name:"ir2"},spec:{barURL:[$url],configurations:["orders-creds","orders-conf"],replicas:1}}')" >/dev/null
wait_ready ir2 /orders >/dev/null

step "7. edit runtime 1 to use the uploaded BAR (GET, change, PUT back whole)"
api "$SLUICE/api/v1/integration-runtimes/ir1" | jq -c --arg url "$URL" '.spec.barURL[0] |= $url | .spec.configurations = ["orders-creds","orders-conf"]' > "$TMPDIR/ir1.json"
api --fail-with-body -X PUT "$SLUICE/api/v1/integration-runtimes/ir1" -H 'content-type: application/json' -d "@$TMPDIR/ir1.json" >/dev/null
IR1=$(wait_ready ir1 /orders)
echo "$IR1" | jq -e '.status.endpoints[] | select(.uri | contains("/hello/"))' >/dev/null && fail "old flow still listed after the edit"
ORDERS=$(echo "$IR1" | jq -r '[.status.endpoints[] | select(.method == "GET")][0].uri')
curl -sS -o /dev/null -w '%{http_code}' "${ORDERS//\{*\}/x}" | grep -Eq '^[1-4][0-9][0-9]$' || fail "new flow does not answer"

step "8. trace: start, download, stop"
api --fail-with-body -X PUT "$SLUICE/api/v1/traces/t1" -H 'content-type: application/json' \
  -d '{"metadata":{"name":"t1"},"spec":{"integrationRuntimeName":"ir1","type":"user"}}' >/dev/null
api --fail-with-body "$SLUICE/api/v1/traces?spec.integrationRuntimeName=ir1" | jq -e '.traces[0].metadata.name == "t1"' >/dev/null || fail "trace not listed"
curl -sS -o /dev/null "${ORDERS//\{*\}/x}" || true
api --fail-with-body -o "$TMPDIR/trace.zip" "$SLUICE/api/v1/traces/t1/download"
unzip -l "$TMPDIR/trace.zip" >/dev/null 2>&1 || python3 -c "import zipfile,sys; zipfile.ZipFile(sys.argv[1]).testzip()" "$TMPDIR/trace.zip" || fail "trace download is not a zip"
api --fail-with-body -X DELETE "$SLUICE/api/v1/traces/t1" >/dev/null

step "9. delete everything and see 404s"
for p in integration-runtimes/ir1 integration-runtimes/ir2 bar-files/second configurations/ext-auth configurations/orders-creds configurations/orders-conf; do
  api --fail-with-body -X DELETE "$SLUICE/api/v1/$p" >/dev/null
done
for p in integration-runtimes/ir1 integration-runtimes/ir2 bar-files/second configurations/ext-auth configurations/orders-creds traces/t1; do
  api "$SLUICE/api/v1/$p" | grep -q '"Internal error","code":404' || fail "GET $p after delete is not a 404"
done
echo "walkthrough: PASS"
