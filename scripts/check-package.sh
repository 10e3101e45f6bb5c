#!/usr/bin/env bash
# Packs the library and consumes the tarball as users do: from a CommonJS project, an ESM
# project and TypeScript projects (nodenext, both module kinds); then lints the package shape.
# Last, installs it the other way users can: from a git URL, which builds it through `prepare`.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fail() {
  echo "check-package: $*" >&2
  exit 1
}

# `npm pack` builds first: the build is the package's `prepare` script.
tarball=$(npm pack --silent --pack-destination "$work" | tail -n 1)
tarball="$work/$tarball"

npx publint --strict
npx attw "$tarball"

# What a package holds: the build, without source maps (src/ is not shipped, so a map or a
# sourceMappingURL comment would point at nothing) and without declarations for the bin.
check_contents() { # package dir
  [[ -f "$1/dist/esm/index.js" && -f "$1/dist/cjs/index.js" ]] || fail "$1: no build in dist/"
  [[ -x "$1/dist/esm/bin/amp-proxy.js" ]] || fail "$1: the bin is missing or not executable"
  local found
  found=$(cd "$1" && find . -name '*.map' -o -path './dist/*/bin/*.d.ts' -o -path './dist/cjs/bin')
  [[ -z "$found" ]] || fail "$1 ships files it must not:"$'\n'"$found"
  found=$(grep -rlE --include="*.js" --include="*.cjs" --include="*.mjs" --include="*.ts" "^//# sourceMappingURL=" "$1/dist" || true)
  [[ -z "$found" ]] || fail "$1 has sourceMappingURL comments:"$'\n'"$found"
}
mkdir "$work/unpacked"
tar -xzf "$tarball" -C "$work/unpacked"
check_contents "$work/unpacked/package"

install() { # dir, type, packages…
  mkdir -p "$1"
  printf '{ "name": "consumer", "private": true, "type": "%s" }\n' "$2" > "$1/package.json"
  (cd "$1" && npm install --loglevel=error --no-audit --no-fund --prefer-offline "${@:3}")
}

install "$work/cjs" commonjs "$tarball" express@5
cp test/package/smoke.cjs "$work/cjs/" && (cd "$work/cjs" && node smoke.cjs)

install "$work/esm" module "$tarball" express@4
cp test/package/smoke.mjs "$work/esm/" && (cd "$work/esm" && node smoke.mjs)

for kind in module commonjs; do
  dir="$work/ts-$kind"
  install "$dir" "$kind" "$tarball" express@5 @types/express@5 @types/node@22 typescript@5.9
  cp test/package/smoke.ts "$dir/"
  printf '{ "compilerOptions": { "module": "nodenext", "moduleResolution": "nodenext", "strict": true, "noEmit": true, "types": ["node"], "esModuleInterop": true }, "files": ["smoke.ts"] }\n' > "$dir/tsconfig.json"
  (cd "$dir" && npx tsc -p tsconfig.json) && echo "typescript ($kind) ok"
done

# From a git URL: npm clones the repository, installs its devDependencies, runs `prepare` (the
# build) and installs what `npm pack` would ship. The repository is this work tree committed to a
# scratch repository (on CI's clean checkout, that is HEAD), so that uncommitted changes are
# checked as the tarball's are; git+file:// because CI reaches package registries only.
[[ -e "$root/.git" ]] || fail "$root is not a git work tree"
repo="$work/repo"
git init --quiet "$repo"
GIT_DIR="$repo/.git" GIT_WORK_TREE="$root" git add --all
git -C "$repo" -c user.name=check-package -c user.email=check-package@localhost \
  -c commit.gpgsign=false commit --quiet --no-verify -m 'work tree of the package under check'
install "$work/git" commonjs "git+file://$repo" express@5
check_contents "$work/git/node_modules/amp-proxy-middleware"
cp test/package/smoke.cjs test/package/smoke.mjs "$work/git/"
(cd "$work/git" && node smoke.cjs && node smoke.mjs)
version=$(cd "$work/git" && npx --no-install amp-proxy --version)
[[ "$version" == "$(node -p 'require("./package.json").version')" ]] ||
  fail "the git-installed bin printed version '$version'"
echo "git install ok"
echo "package checks passed"
