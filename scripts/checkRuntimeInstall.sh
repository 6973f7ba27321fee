#!/usr/bin/env bash
# Repeats the runtime stage of infra/Dockerfile without Docker: a production install
# (`npm ci --omit=dev --ignore-scripts`) in an empty directory, plus the built dist/ and bin/,
# then runs the CLI. Passing proves the image's install has every runtime dependency: a module
# that is only a devDependency, or only present through an install script, fails here.
#
# Needs a built dist/ (`npm run build`). Usage: scripts/checkRuntimeInstall.sh
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ ! -f "$repo/dist/cli/main.js" ]]; then
  echo "dist/ is not built; run npm run build first" >&2
  exit 1
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/changelog-runtime-XXXXXX")"
trap 'rm -rf "$work"' EXIT

cp "$repo/package.json" "$repo/package-lock.json" "$work/"
(cd "$work" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error)
cp -R "$repo/dist" "$repo/bin" "$work/"

# No devDependency may have been installed.
dev_deps="$(node -e 'console.log(Object.keys(require(process.argv[1]).devDependencies ?? {}).join("\n"))' "$work/package.json")"
while IFS= read -r dep; do
  [[ -z "$dep" ]] && continue
  if [[ -e "$work/node_modules/$dep" ]]; then
    echo "FAIL: devDependency $dep is present in the production install" >&2
    exit 1
  fi
done <<<"$dev_deps"

cd "$work"
status=0
run() {
  local out
  if out="$(NODE_ENV=production node bin/dynamodb-changelog.js "$@" 2>&1)"; then
    echo "ok: dynamodb-changelog $* ($(printf '%s' "$out" | head -n 1))"
  else
    echo "FAIL: dynamodb-changelog $* exited $?:" >&2
    printf '%s\n' "$out" >&2
    status=1
  fi
}
run --version
run run --help
run verify --help
run segment --help
# Load every compiled module, so a dependency that only some command imports is checked too.
if NODE_ENV=production node --input-type=module -e '
  import { readdirSync } from "node:fs";
  import path from "node:path";
  import { pathToFileURL } from "node:url";
  const walk = (dir) => readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(path.join(dir, e.name)) : e.name.endsWith(".js") ? [path.join(dir, e.name)] : []);
  const files = walk("dist");
  for (const file of files) await import(pathToFileURL(path.resolve(file)).href);
  console.log(`ok: imported ${files.length} modules of dist/`);
'; then :; else
  echo "FAIL: a module of dist/ does not load with the production install" >&2
  status=1
fi
if [[ "$status" -eq 0 ]]; then
  echo "runtime install OK ($(du -sh node_modules | cut -f1) of node_modules)"
fi
exit "$status"
