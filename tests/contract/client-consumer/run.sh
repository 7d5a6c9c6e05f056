#!/usr/bin/env bash
# The client package as a frontend meets it: packed, installed from the
# tarball into a fresh TypeScript project (strict, skipLibCheck off), where
# (a) the README's examples must compile and (b) mistakes.ts, whose every
# mistake is marked `// @ts-expect-error`, must compile too: tsc fails if any
# of those mistakes type-checks. Nothing of the package's own tree is visible
# to the project but what `npm pack` ships.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
package="$here/../../../clients/typescript"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

(cd "$package" && npm pack --silent --pack-destination "$work" >/dev/null)
tarball="$(cd "$work" && ls ./*.tgz)"
echo "--> packed: $(tar -tzf "$work/$tarball" | sed 's#^package/##' | grep -c .) files"
tar -tzf "$work/$tarball" | grep -q 'package/dist/schema.d.ts' || {
  echo "the packed client does not ship its generated types (dist/schema.d.ts)" >&2
  exit 1
}

cd "$work"
cat > package.json <<'JSON'
{ "name": "scratch-frontend", "private": true, "type": "module" }
JSON
typescript="$(node -p "require('$package/package.json').devDependencies.typescript")"
npm install --no-audit --no-fund --loglevel=error "$tarball" "typescript@$typescript" >/dev/null
cat > tsconfig.json <<'JSON'
{
  "compilerOptions": {
    "target": "ES2022",
    "module": "NodeNext",
    "moduleResolution": "NodeNext",
    "lib": ["ES2022", "DOM", "DOM.Iterable"],
    "strict": true,
    "skipLibCheck": false,
    "noEmit": true
  },
  "include": ["*.ts"]
}
JSON
# Every ```ts block of the package's README, each a module of its own.
awk '/^```ts/{f=1; n++; file=sprintf("readme-%d.ts", n); print "export {};" > file; next}
     /^```/{f=0} f{print >> file}' "$package/README.md"
ls readme-*.ts >/dev/null
cp "$here/globals.d.ts" "$here/mistakes.ts" .
npx --no-install tsc -p tsconfig.json
echo "--> the README's $(ls readme-*.ts | wc -l) examples compile; each of the $(grep -c '@ts-expect-error' mistakes.ts) mistakes is refused"
