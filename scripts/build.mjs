// Builds the dual package: ESM in dist/esm, CommonJS in dist/cjs, each with its own types.
// Also the package's `prepare` script, so that it runs on `npm ci`, `npm pack`/`npm publish` and
// when npm installs the package from a git URL (after installing its devDependencies).
import { execFileSync } from 'node:child_process';
import { chmodSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// Paths from the repository root, wherever npm or a user starts the script from.
process.chdir(join(dirname(fileURLToPath(import.meta.url)), '..'));

const tsc = (project) =>
  execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', project], { stdio: 'inherit' });

rmSync('dist', { recursive: true, force: true });
tsc('tsconfig.build.json');
tsc('tsconfig.cjs.json');
// Without this marker Node would read dist/cjs/*.js as ESM (the package itself is "type": "module").
writeFileSync('dist/cjs/package.json', '{ "type": "commonjs" }\n');
chmodSync('dist/esm/bin/amp-proxy.js', 0o755);
// The bin is run, never imported: its declarations would only be dead weight in the package.
// (tsconfig.cjs.json leaves src/bin out, so there is no dist/cjs/bin.)
rmSync('dist/esm/bin/amp-proxy.d.ts');
