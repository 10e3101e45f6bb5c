#!/usr/bin/env bash
# Packs the library and consumes the tarball as users do: from a CommonJS project, an ESM
# project and TypeScript projects (nodenext, both module kinds); then lints the package shape.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

npm run build --silent
tarball=$(npm pack --silent --pack-destination "$work" | tail -n 1)
tarball="$work/$tarball"

npx publint --strict
npx attw "$tarball"

install() { # dir, type, extra packages…
  mkdir -p "$1"
  printf '{ "name": "consumer", "private": true, "type": "%s" }\n' "$2" > "$1/package.json"
  (cd "$1" && npm install --silent --no-audit --no-fund --prefer-offline "$tarball" "${@:3}")
}

install "$work/cjs" commonjs express@5
cp test/package/smoke.cjs "$work/cjs/" && (cd "$work/cjs" && node smoke.cjs)

install "$work/esm" module express@4
cp test/package/smoke.mjs "$work/esm/" && (cd "$work/esm" && node smoke.mjs)

for kind in module commonjs; do
  dir="$work/ts-$kind"
  install "$dir" "$kind" express@5 @types/express@5 @types/node@20 typescript@5.9
  cp test/package/smoke.ts "$dir/"
  printf '{ "compilerOptions": { "module": "nodenext", "moduleResolution": "nodenext", "strict": true, "noEmit": true, "types": ["node"], "esModuleInterop": true }, "files": ["smoke.ts"] }\n' > "$dir/tsconfig.json"
  (cd "$dir" && npx tsc -p tsconfig.json) && echo "typescript ($kind) ok"
done
echo "package checks passed"
