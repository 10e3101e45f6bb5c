/**
 * Compiles the TypeScript snippets of Markdown files the way a user who copies one would: each
 * ```ts / ```typescript block is its own module, compiled with `tsc` under `strict`,
 * `module`/`moduleResolution` `nodenext`, against the package's built types (imported by name,
 * through the `exports` map), once with Express 5's types and once with Express 4's.
 *
 * Convention: a snippet is a complete module (its own imports, nothing left undeclared). A snippet
 * that shows a mistake marks the line with `// @ts-expect-error`; a block that is deliberately not
 * compilable is preceded by the line `<!-- ts-check: skip -->`.
 */
import { spawn } from 'node:child_process';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');

export interface Snippet {
  /** The Markdown file, relative to the repository root. */
  readonly source: string;
  /** The line of the Markdown file that holds the snippet's first line of code (1-based). */
  readonly line: number;
  readonly code: string;
  /** Preceded by `<!-- ts-check: skip -->`. */
  readonly skip: boolean;
}

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([\w-]*)/;
const TS_LANGUAGES = new Set(['ts', 'typescript']);
const SKIP_MARKER = /^\s*<!--\s*ts-check:\s*skip\s*-->\s*$/;

/** The fenced ```ts / ```typescript blocks of a Markdown text. */
export function extractSnippets(markdown: string, source: string): Snippet[] {
  const lines = markdown.split(/\r?\n/);
  const snippets: Snippet[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = FENCE.exec(lines[i]!);
    if (!open) continue;
    const [, fence = '', language = ''] = open;
    const indent = /^ */.exec(lines[i]!)![0].length;
    let end = i + 1;
    // A closing fence: the same character, at least as long, nothing after it.
    while (end < lines.length && !isClosingFence(lines[end]!, fence)) end++;
    if (TS_LANGUAGES.has(language.toLowerCase())) {
      let previous = i - 1;
      while (previous >= 0 && lines[previous]!.trim() === '') previous--;
      snippets.push({
        source,
        line: i + 2,
        // Strip the fence's own indentation, as Markdown does.
        code: lines
          .slice(i + 1, end)
          .map((line) => line.replace(new RegExp(`^ {0,${indent}}`), ''))
          .join('\n'),
        skip: previous >= 0 && SKIP_MARKER.test(lines[previous]!),
      });
    }
    i = end;
  }
  return snippets;
}

function isClosingFence(line: string, fence: string): boolean {
  const trimmed = line.trim();
  return (
    /^ {0,3}\S/.test(line) && trimmed.length >= fence.length && trimmed === fence[0]!.repeat(trimmed.length)
  );
}

/** The snippets of every Markdown file given (paths relative to the repository root). */
export async function collectSnippets(files: readonly string[]): Promise<Snippet[]> {
  const all: Snippet[] = [];
  for (const file of files) {
    all.push(...extractSnippets(await readFile(join(ROOT, file), 'utf8'), file));
  }
  return all;
}

/** Removes the `run-<pid>` directories under `parent` that failed runs left behind, once their process is gone. */
export async function removeStaleRuns(parent: string): Promise<void> {
  const entries = await readdir(parent).catch(() => []);
  for (const entry of entries) {
    const pid = /^run-(\d+)$/.exec(entry)?.[1];
    if (pid === undefined || isAlive(Number(pid))) continue;
    await rm(join(parent, entry), { recursive: true, force: true });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0); // signal 0: only asks whether the process exists
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface TypeVariant {
  readonly label: string;
  /** Extra compiler options, with paths relative to the scratch directory. */
  readonly compilerOptions: Record<string, unknown>;
}

/** The types of both Express majors the package supports; `express` is Express 5 by default. */
export function expressVariants(scratchDir: string): TypeVariant[] {
  const express4Types = relative(scratchDir, join(ROOT, 'node_modules', '@types', 'express4', 'index.d.ts'));
  return [
    { label: 'Express 5 types', compilerOptions: {} },
    { label: 'Express 4 types', compilerOptions: { paths: { express: [express4Types] } } },
    // Apps that turn it on must be able to write `upstreamKey: process.env.AMP_KEY` and every snippet.
    {
      label: 'Express 5 types, exactOptionalPropertyTypes',
      compilerOptions: { exactOptionalPropertyTypes: true },
    },
  ];
}

export interface SnippetDiagnostic {
  readonly variant: string;
  /** `README.md:83:5`, or the compiler's own location when it is outside every snippet. */
  readonly location: string;
  readonly message: string;
  /** The snippet's line the diagnostic points at. */
  readonly code: string | undefined;
}

export interface SnippetRun {
  readonly checked: readonly Snippet[];
  readonly skipped: readonly Snippet[];
  readonly diagnostics: readonly SnippetDiagnostic[];
  readonly scratchDir: string;
}

/**
 * Writes the snippets into `scratchDir` (inside the repository, so that the package's own name
 * resolves to it through its `exports` map, as in a user's app) and compiles them once per
 * variant, in parallel. The directory is removed when everything compiles, kept otherwise.
 */
export async function compileSnippets(
  snippets: readonly Snippet[],
  scratchDir: string,
  variants: readonly TypeVariant[] = expressVariants(scratchDir),
): Promise<SnippetRun> {
  const checked = snippets.filter((snippet) => !snippet.skip);
  const skipped = snippets.filter((snippet) => snippet.skip);
  await rm(scratchDir, { recursive: true, force: true });
  await mkdir(scratchDir, { recursive: true });
  const byFile = new Map<string, Snippet>();
  for (const [index, snippet] of checked.entries()) {
    // `03-README-L80.ts`, `04-examples-standalone-README-L12.ts`: a file name that says where it came from.
    const from = snippet.source.replace(/\.md$/, '').replace(/[^\w-]+/g, '-');
    const name = `${String(index + 1).padStart(2, '0')}-${from}-L${snippet.line}.ts`;
    byFile.set(name, snippet);
    await writeFile(join(scratchDir, name), snippet.code.endsWith('\n') ? snippet.code : `${snippet.code}\n`);
  }
  const diagnostics = (
    await Promise.all(
      variants.map(async (variant, index) => {
        const project = `tsconfig.${index}.json`;
        await writeFile(
          join(scratchDir, project),
          `${JSON.stringify(
            {
              compilerOptions: {
                strict: true,
                module: 'nodenext',
                moduleResolution: 'nodenext',
                target: 'es2022',
                lib: ['es2023'],
                types: ['node'],
                noEmit: true,
                // As most apps have it; it also keeps the run to a couple of seconds. The package's
                // own declarations are checked when they are built.
                skipLibCheck: true,
                // Each snippet is a module of its own, even one without import or export.
                moduleDetection: 'force',
                ...variant.compilerOptions,
              },
              files: [...byFile.keys()],
            },
            null,
            2,
          )}\n`,
        );
        return parseDiagnostics(await runTsc(scratchDir, project), variant.label, byFile);
      }),
    )
  ).flat();
  if (diagnostics.length === 0) await rm(scratchDir, { recursive: true, force: true });
  return { checked, skipped, diagnostics, scratchDir };
}

async function runTsc(cwd: string, project: string): Promise<string> {
  const child = spawn(process.execPath, [TSC, '-p', project, '--pretty', 'false'], { cwd });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  // tsc exits with 0, or with 1/2 when it reported errors; anything else is a crash.
  if (code !== 0 && output.trim() === '')
    throw new Error(`tsc -p ${project} exited with ${code} and said nothing`);
  return output;
}

/** tsc's `file(line,col): error TSxxxx: …` lines (and their indented continuations), in Markdown terms. */
function parseDiagnostics(
  output: string,
  variant: string,
  byFile: Map<string, Snippet>,
): SnippetDiagnostic[] {
  const diagnostics: { variant: string; location: string; message: string; code: string | undefined }[] = [];
  for (const line of output.split('\n')) {
    if (line.trim() === '') continue;
    const located = /^(.+?)\((\d+),(\d+)\): (.*)$/.exec(line);
    const last = diagnostics.at(-1);
    if (!located) {
      if (last && /^\s/.test(line)) last.message += `\n${line}`;
      else diagnostics.push({ variant, location: 'tsc', message: line, code: undefined });
      continue;
    }
    const [, file = '', row = '1', column = '1', message = ''] = located;
    const snippet = byFile.get(file);
    diagnostics.push({
      variant,
      location: snippet
        ? `${snippet.source}:${snippet.line + Number(row) - 1}:${column}`
        : `${file}:${row}:${column}`,
      message,
      code: snippet?.code.split('\n')[Number(row) - 1],
    });
  }
  return diagnostics;
}

/**
 * One block per diagnostic: Markdown location, the type variants it appears with, tsc's message,
 * the offending line. A diagnostic that every variant reports is listed once.
 */
export function formatDiagnostics(diagnostics: readonly SnippetDiagnostic[]): string {
  const merged = new Map<string, { diagnostic: SnippetDiagnostic; variants: string[] }>();
  for (const diagnostic of diagnostics) {
    const key = `${diagnostic.location}\0${diagnostic.message}`;
    const entry = merged.get(key);
    if (entry) entry.variants.push(diagnostic.variant);
    else merged.set(key, { diagnostic, variants: [diagnostic.variant] });
  }
  return [...merged.values()]
    .map(
      ({ diagnostic: { location, message, code }, variants }) =>
        `${location} [${variants.join(', ')}] ${message}${code === undefined ? '' : `\n    | ${code}`}`,
    )
    .join('\n');
}
