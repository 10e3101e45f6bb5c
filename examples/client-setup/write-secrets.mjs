// Stores a gateway key where the Amp CLI looks for it, so users need no AMP_API_KEY in their shell.
//
//   printf '%s' "$KEY" | node write-secrets.mjs --url http://127.0.0.1:8317 [secrets-file]
//
// The key is read from stdin (or typed at the prompt), never from the command line, where it
// would land in shell history and in `ps` output.
import { mkdir, readFile, realpath, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline/promises';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

export function defaultSecretsFile() {
  return join(homedir(), '.local', 'share', 'amp', 'secrets.json');
}

/**
 * Sets `apiKey@<url>` in the secrets file, keeping every other entry. `url` is used exactly as
 * given: the CLI looks the key up under AMP_URL as written, and `http://gw:8317/` and
 * `http://gw:8317` are different entries, the wrong one meaning no Authorization at all.
 * Returns the entry name.
 */
export async function writeSecret({ url, key, file = defaultSecretsFile() }) {
  let protocol;
  try {
    protocol = new URL(url).protocol;
  } catch {
    throw new Error(`not a URL: ${JSON.stringify(url)}; pass the value of AMP_URL`);
  }
  if (protocol !== 'http:' && protocol !== 'https:') throw new Error(`expected an http(s) URL, got ${url}`);
  if (!key || /\s/.test(key)) throw new Error('expected one key with no whitespace on stdin');

  // A symlinked secrets file (dotfile managers do this) is updated where it lives, not replaced.
  const target = await realpath(file).catch(() => file);
  await mkdir(dirname(target), { recursive: true, mode: 0o700 });

  let secrets = {};
  try {
    secrets = JSON.parse(await readFile(target, 'utf8'));
  } catch (error) {
    // Anything but "no file yet" stops here: rewriting would lose the user's other entries.
    if (error.code !== 'ENOENT') throw new Error(`${target} exists but is not readable JSON; fix or move it`);
  }
  if (typeof secrets !== 'object' || secrets === null || Array.isArray(secrets)) {
    throw new Error(`${target} is not a JSON object; fix or move it`);
  }

  const entry = `apiKey@${url}`;
  secrets[entry] = key;
  // Created 0600 beside the target, then renamed over it: the key is never readable by other
  // users, not even for a moment, and a crash leaves the old file rather than half a new one.
  const temporary = `${target}.${process.pid}.tmp`;
  try {
    await writeFile(temporary, `${JSON.stringify(secrets, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
    await rename(temporary, target);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
  return entry;
}

async function readKey(url) {
  if (process.stdin.isTTY) {
    const prompt = createInterface({ input: process.stdin, output: process.stderr });
    try {
      return (await prompt.question(`Gateway key for ${url}: `)).trim();
    } finally {
      prompt.close();
    }
  }
  let text = '';
  for await (const chunk of process.stdin) text += chunk;
  return text.trim();
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    const { values, positionals } = parseArgs({
      options: { url: { type: 'string', default: process.env.AMP_URL } },
      allowPositionals: true,
    });
    if (!values.url) throw new Error('pass --url <AMP_URL> or set AMP_URL');
    if (positionals.length > 1) throw new Error('expected at most one argument, the secrets file');
    const file = positionals[0] ?? defaultSecretsFile();
    const entry = await writeSecret({ url: values.url, key: await readKey(values.url), file });
    console.log(`wrote "${entry}" to ${file}`);
    console.log(`the Amp CLI uses it when AMP_URL is exactly ${values.url}`);
  } catch (error) {
    console.error(`write-secrets: ${error.message}`);
    process.exitCode = 1;
  }
}
