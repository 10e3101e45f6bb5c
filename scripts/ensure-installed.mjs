// Lets `npm start` and `npm test` work on a fresh clone: refuses a Node release the package does
// not support (npm only warns about `engines`), then installs the locked dependencies once.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';

/** Whether `version` satisfies `range`, written as `^X.Y.Z` and `>=X.Y.Z` terms joined by `||`. */
function satisfies(version, range) {
  const [major, minor] = version.split('.').map(Number);
  return range.split('||').some((term) => {
    const [, operator, wantedMajor, wantedMinor] = /^\s*(\^|>=)(\d+)\.(\d+)\.\d+\s*$/.exec(term) ?? [];
    if (!operator) throw new Error(`ensure-installed: cannot read the engines term "${term}"`);
    const atLeast =
      major > Number(wantedMajor) || (major === Number(wantedMajor) && minor >= Number(wantedMinor));
    return atLeast && (operator === '>=' || major === Number(wantedMajor));
  });
}

const { engines } = JSON.parse(readFileSync('package.json', 'utf8'));
if (!satisfies(process.versions.node, engines.node)) {
  console.error(
    `amp-proxy-middleware needs Node ${engines.node}; this is Node ${process.versions.node}. ` +
      'Put a supported Node first on PATH (see README, "Install").',
  );
  process.exit(1);
}

if (!existsSync('node_modules/.package-lock.json')) {
  execFileSync('npm', ['ci', '--no-audit', '--no-fund'], { stdio: 'inherit' });
}
