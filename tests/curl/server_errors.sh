#!/bin/sh
# Every error case of the server issue, sent with curl to a real `g3n serve` on the tiny fixture:
# each must answer the right status with a JSON {"error": ...} body, and the server must keep serving.
# Usage: server_errors.sh G3N_BINARY MODEL.gguf [MMPROJ.gguf IMAGE]
# With a projector and an image, the image cases run against "seeing" (the model with the projector).
set -u
G3N=$1
GGUF=$2
MMPROJ=${3:-}
IMAGE=${4:-}
command -v curl >/dev/null || { echo "skipped: curl not installed"; exit 77; }
STORE=$(mktemp -d "${TMPDIR:-/tmp}/g3n-curl-XXXXXX")
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$STORE"' EXIT INT TERM
export G3N_MODELS="$STORE" OLLAMA_MODELS="$STORE/no-ollama"
"$G3N" create tiny --from "$GGUF" >/dev/null || exit 1
if [ -n "$MMPROJ" ]; then "$G3N" create seeing --from "$GGUF" --mmproj "$MMPROJ" >/dev/null || exit 1; fi
# Port 0: the kernel picks a free one; the server's first log line says which.
"$G3N" serve --host "127.0.0.1:0" --threads 1 2>"$STORE/server.log" &
SERVER=$!
i=0
PORT=
while [ -z "$PORT" ]; do
  PORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$STORE/server.log" | head -n 1)
  i=$((i + 1))
  if [ -z "$PORT" ] && { [ $i -gt 100 ] || ! kill -0 $SERVER 2>/dev/null; }; then echo "server did not start"; cat "$STORE/server.log"; exit 1; fi
  [ -z "$PORT" ] && sleep 0.1
done
URL="http://127.0.0.1:$PORT"
until curl -s -o /dev/null "$URL/"; do sleep 0.1; done

FAILED=0
# case NAME WANT_STATUS METHOD PATH [BODY]
case_() {
  name=$1 want=$2 method=$3 path=$4
  if [ $# -ge 5 ]; then
    printf '%s' "$5" >"$STORE/body"
    got=$(curl -s -o "$STORE/out" -w '%{http_code}' -X "$method" -H 'Content-Type: application/json' --data-binary @"$STORE/body" "$URL$path")
  elif [ "$method" = HEAD ]; then
    got=$(curl -s -o "$STORE/out" -w '%{http_code}' -I "$URL$path")
  else
    got=$(curl -s -o "$STORE/out" -w '%{http_code}' -X "$method" "$URL$path")
  fi
  if [ "$got" != "$want" ]; then
    echo "FAIL $name: status $got, want $want: $(head -c 300 "$STORE/out")"; FAILED=$((FAILED + 1)); return
  fi
  if [ "$want" -ge 400 ] && [ "$path" != "/no/such/path" ] && [ "$method" != HEAD ] && ! grep -q '"error"' "$STORE/out"; then
    echo "FAIL $name: no JSON error body: $(head -c 300 "$STORE/out")"; FAILED=$((FAILED + 1)); return
  fi
  echo "ok   $name ($got)"
}

case_ "malformed JSON"                400 POST /api/generate '{not json'
case_ "empty body"                    400 POST /api/generate ''
case_ "body not an object"            400 POST /api/generate '[1, 2]'
case_ "model of the wrong type"       400 POST /api/generate '{"model": 7, "prompt": "x"}'
case_ "unknown model"                 404 POST /api/generate '{"model": "nope", "prompt": "x"}'
case_ "unknown model (chat)"          404 POST /api/chat '{"model": "nope", "messages": [{"role": "user", "content": "x"}]}'
case_ "unknown model (openai)"        404 POST /v1/chat/completions '{"model": "nope", "messages": [{"role": "user", "content": "x"}]}'
case_ "a path is not a model name"    404 POST /api/show '{"model": "/etc/passwd"}'
case_ "a GGUF path is not a model"    404 POST /api/generate "{\"model\": \"$GGUF\", \"prompt\": \"x\"}"
case_ "option of the wrong type"      400 POST /api/generate '{"model": "tiny", "prompt": "x", "options": {"top_k": "many"}}'
case_ "invalid option value"          400 POST /api/generate '{"model": "tiny", "prompt": "x", "options": {"num_ctx": 1}}'
case_ "images that are no image"      400 POST /api/generate '{"model": "tiny", "prompt": "x", "images": ["aGVsbG8="]}'
case_ "images not base64"             400 POST /api/generate '{"model": "tiny", "prompt": "x", "images": ["@@@"]}'
case_ "images not an array"           400 POST /api/chat '{"model": "tiny", "messages": [{"role": "user", "content": "x", "images": "aGVsbG8="}]}'
case_ "remote image_url"              400 POST /v1/chat/completions '{"model": "tiny", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]}'
case_ "suffix (no fill-in-middle)"    400 POST /api/generate '{"model": "tiny", "prompt": "x", "suffix": "y"}'
case_ "unknown role"                  400 POST /api/chat '{"model": "tiny", "messages": [{"role": "wizard", "content": "x"}]}'
case_ "messages not an array"         400 POST /api/chat '{"model": "tiny", "messages": "hi"}'
case_ "unknown format"                400 POST /api/generate '{"model": "tiny", "prompt": "x", "format": "yaml"}'
case_ "bad response_format"           400 POST /v1/chat/completions '{"model": "tiny", "messages": [{"role": "user", "content": "x"}], "response_format": {"type": "bogus"}}'
case_ "embed input not a string"      400 POST /api/embed '{"model": "tiny", "input": 7}'
case_ "embed array with a number"     400 POST /api/embed '{"model": "tiny", "input": ["x", 7]}'
case_ "embed bad dimensions"          400 POST /api/embed '{"model": "tiny", "input": "x", "dimensions": 0}'
case_ "embed too long, truncate off"  400 POST /api/embed '{"model": "tiny", "input": "a b c d e f g h", "truncate": false, "options": {"num_ctx": 4}}'
case_ "embed unknown model"           404 POST /api/embed '{"model": "nope", "input": "x"}'
case_ "openai embeddings empty array" 400 POST /v1/embeddings '{"model": "tiny", "input": []}'
case_ "openai bad encoding_format"    400 POST /v1/embeddings '{"model": "tiny", "input": "x", "encoding_format": "hex"}'
TOOL='{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}'
MSG='"messages": [{"role": "user", "content": "x"}]'
case_ "tools not an array"            400 POST /api/chat "{\"model\": \"tiny\", $MSG, \"tools\": {}}"
case_ "tool without a function"       400 POST /v1/chat/completions "{\"model\": \"tiny\", $MSG, \"tools\": [{\"type\": \"function\"}]}"
case_ "tool name with a space"        400 POST /api/chat "{\"model\": \"tiny\", $MSG, \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"a b\"}}]}"
case_ "tool defined twice"            400 POST /v1/chat/completions "{\"model\": \"tiny\", $MSG, \"tools\": [$TOOL, $TOOL]}"
case_ "tool parameters not an object" 400 POST /v1/chat/completions "{\"model\": \"tiny\", $MSG, \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": {\"type\": \"string\"}}}]}"
case_ "unknown tool_choice"           400 POST /v1/chat/completions "{\"model\": \"tiny\", $MSG, \"tools\": [$TOOL], \"tool_choice\": \"always\"}"
case_ "tool_choice names no tool"     400 POST /api/chat "{\"model\": \"tiny\", $MSG, \"tools\": [$TOOL], \"tool_choice\": {\"type\": \"function\", \"function\": {\"name\": \"nope\"}}}"
case_ "tool_choice required, no tools" 400 POST /v1/chat/completions "{\"model\": \"tiny\", $MSG, \"tool_choice\": \"required\"}"
case_ "tools with format"             400 POST /api/chat "{\"model\": \"tiny\", $MSG, \"tools\": [$TOOL], \"format\": \"json\"}"
case_ "history call arguments not JSON" 400 POST /v1/chat/completions "{\"model\": \"tiny\", \"messages\": [{\"role\": \"user\", \"content\": \"x\"}, {\"role\": \"assistant\", \"tool_calls\": [{\"id\": \"c\", \"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"arguments\": \"{oops\"}}]}]}"
case_ "a required tool call (200)"    200 POST /v1/chat/completions "{\"model\": \"tiny\", $MSG, \"tools\": [$TOOL], \"tool_choice\": \"required\", \"max_tokens\": 200}"
case_ "bad model name to pull"        400 POST /api/pull '{"model": "bad name!"}'
case_ "delete unknown model"          404 DELETE /api/delete '{"model": "nope"}'
case_ "wrong method"                  405 GET /api/generate
case_ "unknown path"                  404 GET /no/such/path
head -c 34000000 /dev/zero | tr '\0' 'x' >"$STORE/huge"
got=$(curl -s -o "$STORE/out" -w '%{http_code}' -H 'Content-Type: application/json' --data-binary @"$STORE/huge" "$URL/api/generate")
if [ "$got" = 413 ] && grep -q '"error"' "$STORE/out"; then echo "ok   oversized body (413)"; else echo "FAIL oversized body: $got"; FAILED=$((FAILED + 1)); fi
# A prompt longer than the context is truncated (oldest part), answered 200, and says so.
LONG=$(yes "word" | head -n 3000 | tr '\n' ' ')
got=$(curl -s -D "$STORE/headers" -o "$STORE/out" -w '%{http_code}' -H 'Content-Type: application/json' \
  --data-binary "{\"model\": \"tiny\", \"prompt\": \"$LONG\", \"stream\": false, \"options\": {\"num_ctx\": 256, \"num_predict\": 2, \"temperature\": 0}}" "$URL/api/generate")
if [ "$got" = 200 ] && grep -qi 'X-G3n-Prompt-Truncated' "$STORE/headers"; then echo "ok   prompt longer than the context (200, truncated)"; else echo "FAIL long prompt: $got"; FAILED=$((FAILED + 1)); fi
if [ -n "$MMPROJ" ]; then
  IMG=$(base64 "$IMAGE" | tr -d '\n')
  HALF=$(head -c $(($(wc -c <"$IMAGE") / 2)) "$IMAGE" | base64 | tr -d '\n')
  case_ "image for a model without a projector" 400 POST /api/generate "{\"model\": \"tiny\", \"prompt\": \"x\", \"images\": [\"$IMG\"]}"
  case_ "truncated image"               400 POST /api/generate "{\"model\": \"seeing\", \"prompt\": \"x\", \"images\": [\"$HALF\"]}"
  case_ "more image rows than num_ctx"  400 POST /api/chat "{\"model\": \"seeing\", \"options\": {\"num_ctx\": 256}, \"messages\": [{\"role\": \"user\", \"content\": \"x\", \"images\": [\"$IMG\"]}]}"
  case_ "an image (200)"                200 POST /api/generate "{\"model\": \"seeing\", \"prompt\": \"x\", \"stream\": false, \"images\": [\"$IMG\"], \"options\": {\"num_predict\": 2}}"
  case_ "an image_url data URL (200)"   200 POST /v1/chat/completions "{\"model\": \"seeing\", \"max_tokens\": 2, \"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\", \"image_url\": \"data:image/jpeg;base64,$IMG\"}]}]}"
fi
# Making models over HTTP: upload a blob (curl streams the file), then create from it; and the refusals.
# A file the store does not hold yet: not there, uploaded (201), there.
head -c 300000 /dev/urandom >"$STORE/blob"
FRESH=sha256:$(sha256sum "$STORE/blob" | cut -d' ' -f1)
case_ "blob not there yet"            404 HEAD "/api/blobs/$FRESH"
got=$(curl -s -o "$STORE/out" -w '%{http_code}' --data-binary @"$STORE/blob" "$URL/api/blobs/$FRESH")
if [ "$got" = 201 ]; then echo "ok   upload a blob (201)"; else echo "FAIL upload: $got $(head -c 300 "$STORE/out")"; FAILED=$((FAILED + 1)); fi
got=$(curl -s -o /dev/null -w '%{http_code}' -I "$URL/api/blobs/$FRESH")
if [ "$got" = 200 ]; then echo "ok   blob there (HEAD 200)"; else echo "FAIL HEAD after upload: $got"; FAILED=$((FAILED + 1)); fi
got=$(curl -s -o /dev/null -w '%{http_code}' --data-binary @"$STORE/blob" "$URL/api/blobs/$FRESH")
if [ "$got" = 200 ]; then echo "ok   upload again (200)"; else echo "FAIL upload again: $got"; FAILED=$((FAILED + 1)); fi
# The model's GGUF (the store has it already, from `g3n create tiny`: 200 then).
DIGEST=sha256:$(sha256sum "$GGUF" | cut -d' ' -f1)
got=$(curl -s -o "$STORE/out" -w '%{http_code}' --data-binary @"$GGUF" "$URL/api/blobs/$DIGEST")
if [ "$got" = 200 ] || [ "$got" = 201 ]; then echo "ok   upload the model ($got)"; else echo "FAIL upload the model: $got $(head -c 300 "$STORE/out")"; FAILED=$((FAILED + 1)); fi
OTHER=sha256:$(printf 'other' | sha256sum | cut -d' ' -f1)
got=$(curl -s -o "$STORE/out" -w '%{http_code}' --data-binary @"$STORE/blob" "$URL/api/blobs/$OTHER")
if [ "$got" = 400 ] && grep -q 'digest mismatch' "$STORE/out"; then echo "ok   digest mismatch (400)"; else echo "FAIL digest mismatch: $got"; FAILED=$((FAILED + 1)); fi
case_ "blob with a bad digest"        400 POST /api/blobs/sha256:1234 'x'
case_ "create from the blob (200)"    200 POST /api/create "{\"model\": \"uploaded\", \"files\": {\"model.gguf\": \"$DIGEST\"}, \"stream\": false}"
case_ "create from a model (200)"     200 POST /api/create '{"model": "terse", "from": "uploaded", "system": "Be brief.", "parameters": {"top_k": 5}, "stream": false}'
case_ "the created model runs (200)"  200 POST /api/generate '{"model": "terse", "prompt": "x", "stream": false, "options": {"num_predict": 1}}'
case_ "create without a model"        400 POST /api/create '{"from": "tiny"}'
case_ "create from nothing"           400 POST /api/create '{"model": "x"}'
case_ "create from a path"            404 POST /api/create "{\"model\": \"x\", \"from\": \"$GGUF\"}"
case_ "create from an absent model"   404 POST /api/create '{"model": "x", "from": "nope"}'
case_ "create from an absent blob"    400 POST /api/create "{\"model\": \"x\", \"files\": {\"model.gguf\": \"$OTHER\"}}"
case_ "create with an absolute file"  400 POST /api/create "{\"model\": \"x\", \"files\": {\"/model.gguf\": \"$DIGEST\"}}"
case_ "create from a file not a GGUF"  400 POST /api/create "{\"model\": \"x\", \"files\": {\"model.gguf\": \"$FRESH\"}}"
case_ "create with safetensors"       400 POST /api/create "{\"model\": \"x\", \"files\": {\"model.safetensors\": \"$DIGEST\"}}"
case_ "create with adapters"          400 POST /api/create "{\"model\": \"x\", \"from\": \"tiny\", \"adapters\": {\"a.gguf\": \"$DIGEST\"}}"
case_ "create with a bad parameter"   400 POST /api/create '{"model": "x", "from": "tiny", "parameters": {"top_k": "many"}}'
case_ "quantize a quantized model"    400 POST /api/create '{"model": "x", "from": "tiny", "quantize": "q4_K_M"}'
# Still serving after all of that.
case_ "still serving"                 200 POST /api/generate '{"model": "tiny", "prompt": "x", "stream": false, "options": {"num_predict": 1}}'
if ! kill -0 $SERVER 2>/dev/null; then echo "FAIL the server exited"; FAILED=$((FAILED + 1)); fi
[ $FAILED -eq 0 ] && echo "all curl checks passed"
exit $FAILED
