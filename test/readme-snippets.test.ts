/**
 * Every TypeScript snippet of the README (and of the examples' READMEs) compiles as its own module
 * under `strict` and `module: nodenext`, against the built package types (`npm test` builds
 * first), with Express 5's types and with Express 4's, and once more under
 * `exactOptionalPropertyTypes`. See test/support/readme-snippets.ts for the
 * convention: complete modules; `// @ts-expect-error` for a mistake shown on purpose;
 * `<!-- ts-check: skip -->` on the line before a block that is not meant to compile.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import {
  collectSnippets,
  compileSnippets,
  formatDiagnostics,
  removeStaleRuns,
  ROOT,
} from './support/readme-snippets.js';

const markdownFiles = [
  'README.md',
  ...readdirSync(join(ROOT, 'examples'), { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(join(ROOT, 'examples', entry.name, 'README.md')))
    .map((entry) => `examples/${entry.name}/README.md`)
    .sort(),
];

test('the README TypeScript snippets compile under strict nodenext with both Express majors and exactOptionalPropertyTypes', async (t) => {
  assert.ok(
    existsSync(join(ROOT, 'dist', 'esm', 'index.d.ts')),
    'dist/esm/index.d.ts is missing: run `npm run build` first (`npm test` does)',
  );
  const snippets = await collectSnippets(markdownFiles);
  assert.ok(
    snippets.some((snippet) => snippet.source === 'README.md' && !snippet.skip),
    'found no TypeScript snippet in README.md',
  );
  // A directory per run: engineers and CI may run this at the same time in one work tree.
  const scratchParent = join(ROOT, '.tmp', 'readme-snippets');
  await removeStaleRuns(scratchParent);
  const scratchDir = join(scratchParent, `run-${process.pid}`);
  const run = await compileSnippets(snippets, scratchDir);
  t.diagnostic(
    `compiled ${run.checked.length} snippets` +
      (run.skipped.length ? `, skipped ${run.skipped.map((s) => `${s.source}:${s.line}`).join(', ')}` : ''),
  );
  if (run.diagnostics.length > 0) {
    // A build elsewhere in the work tree (it starts by removing dist/) shows up as unresolved imports.
    const distGone = existsSync(join(ROOT, 'dist', 'esm', 'index.d.ts'))
      ? ''
      : ' dist/ disappeared during the run (a concurrent build?): run again.';
    assert.fail(
      `README snippets do not compile (scratch copy kept in ${relative(ROOT, run.scratchDir)}):${distGone}\n` +
        formatDiagnostics(run.diagnostics),
    );
  }
});

test('the published types do not import prom-client (an optional peer dependency)', () => {
  const dist = join(ROOT, 'dist');
  const declarations = existsSync(dist)
    ? readdirSync(dist, { recursive: true, encoding: 'utf8' }).filter((file) => file.endsWith('.d.ts'))
    : [];
  assert.ok(
    declarations.includes(join('esm', 'types.d.ts')) && declarations.includes(join('cjs', 'types.d.ts')),
    'dist/ has no types: run `npm run build` first (`npm test` does)',
  );
  for (const file of declarations) {
    // Doc comments may show `import * as promClient from 'prom-client'`; code (and
    // `/// <reference types="prom-client" />`) may not name it.
    const code = readFileSync(join(dist, file), 'utf8')
      .replace(/\/\*[\s\S]*?\*\//g, '')
      .replace(/^\s*\/\/(?!\/).*$/gm, '');
    assert.doesNotMatch(code, /['"]prom-client['"]/, `dist/${file}`);
  }
});

test('app.use(ampRouter) is a type error that says what to write, with both Express majors', async () => {
  const mistake = [
    "import express from 'express';",
    "import { ampProviderProxy, ampRouter } from 'amp-proxy-middleware';",
    'const app = express();',
    'app.use(ampRouter);',
    "app.use('/api/provider', ampProviderProxy);",
  ].join('\n');
  const scratchParent = join(ROOT, '.tmp', 'readme-snippets');
  await removeStaleRuns(scratchParent);
  const run = await compileSnippets(
    [{ source: 'mistake.md', line: 1, code: mistake, skip: false }],
    join(scratchParent, `run-${process.pid}-mistake`),
  );
  const byLine = (line: number) =>
    run.diagnostics.filter((d) => d.location.startsWith(`mistake.md:${line}:`));
  for (const line of [4, 5]) {
    const diagnostics = byLine(line);
    // One per type variant: each names the mistake.
    assert.equal(diagnostics.length, 3, formatDiagnostics(run.diagnostics));
    for (const diagnostic of diagnostics) {
      assert.match(diagnostic.message, /factoryPassedUncalled: WriteAppUseAmpRouterWithParentheses\[\]/);
    }
  }
  await rm(run.scratchDir, { recursive: true, force: true });
});
