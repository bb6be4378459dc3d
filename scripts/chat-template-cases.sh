#!/usr/bin/env bash
# Makes the cases of the chat template conformance check
# (tests/chat_templates/README.md): fetches llama.cpp's chat templates
# (scripts/fetch-test-data.sh) and renders them with Python's jinja2 as
# Hugging Face transformers does (tests/chat_templates/render_reference.py,
# in the venv of scripts/conformance-env.sh, which pins jinja2).
#
# The result is $TPSERVE_CACHE/chat-template-cases/cases.json, remade only
# when the render script, the pins or a template changed. Prints its path on
# the last stdout line (progress on stderr); point TPSERVE_CHAT_TEMPLATE_CASES
# at it and run chat_template_conformance_test.
#
#   TPSERVE_CACHE   cache folder (default: .cache in the repository)
set -euo pipefail
cd "$(dirname "$0")/.."

cache=${TPSERVE_CACHE:-$PWD/.cache}
export TPSERVE_CACHE="$cache"
readonly render=tests/chat_templates/render_reference.py
dest="$cache/chat-template-cases"
cases="$dest/cases.json"

vocab=$(scripts/fetch-test-data.sh | tail -n 1)
templates="$(dirname "$vocab")/chat-templates"
python=$(scripts/conformance-env.sh | tail -n 1)

# The key covers everything the output depends on: the script, the jinja2
# version (through the pins) and each template's name and contents.
key=$(
  {
    cat "$render" scripts/conformance-env.sh
    (cd "$templates" && LC_ALL=C find . -maxdepth 1 -name '*.jinja' -print0 |
      LC_ALL=C sort -z | xargs -0 sha256sum)
  } | sha256sum | cut -c1-16
)
if [ -f "$cases" ] && [ "$(cat "$dest/.key" 2>/dev/null)" = "$key" ]; then
  echo "chat-template-cases: $cases (cached)" >&2
  echo "$cases"
  exit 0
fi

echo "chat-template-cases: rendering $templates with jinja2..." >&2
mkdir -p "$dest"
rm -f "$dest/.key"
trap 'rm -f "$cases.tmp"' EXIT
PYTHONDONTWRITEBYTECODE=1 "$python" "$render" "$templates" "$cases.tmp" >&2
mv "$cases.tmp" "$cases"
echo "$key" >"$dest/.key"
echo "chat-template-cases: $cases" >&2
echo "$cases"
