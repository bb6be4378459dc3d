#!/usr/bin/env bash
# The OpenAI-compatible HTTP door with plain curl, as the README shows it:
# the Server-Sent Events framing of a stream, line by line, a whole
# completion, a chat stream, an error object, and a clean SIGTERM.
#
#   TPSERVE_BIN    the tpserve binary (required)
#   TPSERVE_MODEL  the model (default: .cache/models/...Q4_1.gguf)
# Exits 77 (ctest: skipped) when the model is missing.
set -euo pipefail

bin=${TPSERVE_BIN:?set TPSERVE_BIN to the tpserve binary}
model=${TPSERVE_MODEL:-.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf}
if [ ! -f "$model" ]; then
  echo "http_curl_test: model $model not found (scripts/fetch-model.sh); skipped"
  exit 77
fi
name=$(basename "$model")
dir=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
}
trap cleanup EXIT
fail() {
  echo "http_curl_test: FAILED: $*" >&2
  echo "--- server stderr (tail)" >&2
  tail -n 20 "$dir/stderr" >&2 || true
  exit 1
}

"$bin" serve --model "$model" --tp 1 --listen 127.0.0.1:0 --threads 2 \
  --http-listen 127.0.0.1:0 >"$dir/stdout" 2>"$dir/stderr" &
pid=$!
for _ in $(seq 1 360); do
  grep -q '^tpserve ready on ' "$dir/stdout" && break
  kill -0 "$pid" 2>/dev/null || fail "the server exited before it was ready"
  sleep 0.5
done
grep -q '^tpserve ready on ' "$dir/stdout" || fail "no ready line"
http=$(sed -n 's/^tpserve http on //p' "$dir/stdout")
[ -n "$http" ] || fail "no 'tpserve http on' line"
echo "http_curl_test: server on $http"

# 1. A streamed completion: "data: {json}" events, each followed by a blank
#    line, the last non-[DONE] one carrying finish_reason, then
#    "data: [DONE]".
curl -sS -N -D "$dir/headers" "http://$http/v1/completions" \
  -H 'Content-Type: application/json' \
  -d "{\"model\": \"$name\", \"prompt\": \"The capital of France is\",
       \"max_tokens\": 8, \"temperature\": 0, \"stream\": true}" \
  >"$dir/stream" || fail "curl (stream) failed"
grep -qi '^content-type: text/event-stream' "$dir/headers" ||
  fail "stream content type: $(cat "$dir/headers")"
tr -d '\r' <"$dir/stream" >"$dir/stream.lf"
events=0
expect_blank=0
last_json=
while IFS= read -r line; do
  if [ "$expect_blank" = 1 ]; then
    [ -z "$line" ] || fail "no blank line after an event: '$line'"
    expect_blank=0
    continue
  fi
  case $line in
    'data: [DONE]') done_seen=1 ;;
    'data: {'*'"object":"text_completion"'*) last_json=$line ;;
    *) fail "not an SSE completion event: '$line'" ;;
  esac
  events=$((events + 1))
  expect_blank=1
done <"$dir/stream.lf"
[ "${done_seen:-0}" = 1 ] || fail "no data: [DONE]"
[ "$(tail -n 2 "$dir/stream.lf" | head -n 1)" = 'data: [DONE]' ] ||
  fail "data: [DONE] is not the last event"
[ "$events" -ge 4 ] || fail "only $events events"
case $last_json in
  *'"finish_reason":"length"'* | *'"finish_reason":"stop"'*) ;;
  *) fail "the last chunk has no finish_reason: $last_json" ;;
esac
streamed=$(grep -o '"text":"[^"]*"' "$dir/stream.lf" | sed 's/^"text":"//; s/"$//' | tr -d '\n')
echo "http_curl_test: $events events, text '$streamed'"

# 2. The same completion whole: one JSON object with the same text.
code=$(curl -sS -o "$dir/whole" -w '%{http_code}' "http://$http/v1/completions" \
  -H 'Content-Type: application/json' \
  -d '{"prompt": "The capital of France is", "max_tokens": 8, "temperature": 0}')
[ "$code" = 200 ] || fail "completion: HTTP $code: $(cat "$dir/whole")"
grep -q '"object":"text_completion"' "$dir/whole" || fail "completion: $(cat "$dir/whole")"
grep -q '"usage":{"prompt_tokens":[0-9]*,"completion_tokens":8,' "$dir/whole" ||
  fail "completion usage: $(cat "$dir/whole")"
grep -qF "\"text\":\"$streamed\"" "$dir/whole" ||
  fail "whole text differs from the stream's '$streamed': $(cat "$dir/whole")"
grep -q 'Paris' "$dir/whole" || fail "no Paris: $(cat "$dir/whole")"

# 3. A chat stream opens with the assistant role and ends with [DONE].
curl -sS -N "http://$http/v1/chat/completions" -H 'Content-Type: application/json' \
  -d '{"messages": [{"role": "user", "content": "Say hello."}],
       "max_tokens": 8, "stream": true}' | tr -d '\r' >"$dir/chat"
head -n 1 "$dir/chat" | grep -q '^data: {.*"object":"chat.completion.chunk".*"delta":{"role":"assistant","content":""}' ||
  fail "chat stream start: $(head -n 1 "$dir/chat")"
[ "$(tail -n 2 "$dir/chat" | head -n 1)" = 'data: [DONE]' ] || fail "chat stream end"

# 4. Errors are OpenAI error objects with 4xx codes.
code=$(curl -sS -o "$dir/err" -w '%{http_code}' "http://$http/v1/completions" \
  -H 'Content-Type: application/json' -d '{"prompt": "x", "temperature": "hot"}')
[ "$code" = 400 ] || fail "bad temperature: HTTP $code"
grep -q '^{"error":{"message":"temperature is a string, expected a number","type":"invalid_request_error","param":"temperature","code":null}}$' "$dir/err" ||
  fail "error object: $(cat "$dir/err")"
code=$(curl -sS -o "$dir/err" -w '%{http_code}' "http://$http/health")
[ "$code" = 200 ] || fail "health: HTTP $code"

# 5. SIGTERM: drains and exits 0.
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
pid=
[ "$status" = 0 ] || fail "exit status $status after SIGTERM"
echo "http_curl_test: passed"
