/**
 * One body must not stall everyone (issue 16 §2). An amp proxy with a model mapping (so it reads
 * every provider body) serves a second client's ordinary mapped calls, one at a time, first on
 * its own (the idle run), then while attackers send the worst bodies in a loop (and, as a control,
 * while they send ordinary calls in the same loop: what any client in a loop costs). Reported: that
 * client's p50 / p99 / max latency and failures, and the proxy's heap (sampled every 2 ms, garbage
 * included) in each run, against the idle run.
 *
 * Then what the scanner costs ordinary traffic: POST req/s at 50 connections through the same
 * mapped proxy (every body is read for its model), alternating with a proxy of another build when
 * WORST_BASELINE is set.
 *
 * Run alone: node --import tsx bench/worst-body.ts   (npm run bench runs it as one phase)
 * WORST_SECONDS=N      seconds per latency run (default 10; 3 with BENCH_QUICK=1)
 * WORST_BASELINE=dir   absolute path of another build's dist/esm to compare req/s with
 * WORST_ONLY=rate      only the idle run and the req/s comparison
 */
import { Agent, request } from 'node:http';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { brotliCompressSync, constants } from 'node:zlib';
import { killAllChildren, startChild, type Child } from './children.js';
import { MAPPED_MODEL, USER_TOKEN, type ProxyCommands, type UpstreamCommands } from './protocol.js';
import { fixed, median, Report } from './report.js';
import { load, MESSAGES_PATH } from './traffic.js';

const MB = 1024 * 1024;
const quick = process.env.BENCH_QUICK === '1';
const SECONDS = Number(process.env.WORST_SECONDS ?? (quick ? 3 : 10));
const ATTACKERS = 2;
const PROBE_TIMEOUT_MS = 30_000;
const ATTACK_TIMEOUT_MS = 120_000;
const RATE_ROUNDS = quick ? 1 : 6;
const RATE_SECONDS = quick ? 2 : 4;
const BASELINE = process.env.WORST_BASELINE;
const RATE_ONLY = process.env.WORST_ONLY === 'rate';

const PROBE_BODY = JSON.stringify({
  model: MAPPED_MODEL,
  max_tokens: 1024,
  messages: [{ role: 'user', content: 'Say hello.' }],
});

interface WorstBody {
  readonly name: string;
  readonly describe: string;
  readonly bytes: Buffer;
  readonly decodedBytes: number;
}

/** `{"model":…,<extra>"messages":[{},{},…]}`, `size` bytes long: one object per 3 bytes. */
function manyObjects(size: number, extra = ''): Buffer {
  const head = `{"model":"${MAPPED_MODEL}",${extra}"messages":[{}`;
  const tail = ']}';
  const count = Math.floor((size - head.length - tail.length) / 3);
  return Buffer.from(head + ',{}'.repeat(count) + tail);
}

const brotli = (bytes: Buffer): Buffer =>
  brotliCompressSync(bytes, { params: { [constants.BROTLI_PARAM_QUALITY]: 5 } });

/**
 * The bodies of the issue: 33 MB of empty objects in 113 bytes of brotli (under the old 32 MiB
 * default cap), and the densest body the decompression ratio cap lets through: 16 MiB of empty
 * objects made just compressible enough (incompressible padding) to stay under 80:1.
 */
function worstBodies(): WorstBody[] {
  const bomb = manyObjects(33_000_000);
  const denseSize = 16 * MB - 1024;
  let pad = Math.ceil(denseSize / 80);
  let dense = manyObjects(denseSize, `"pad":"${randomBytes(pad).toString('base64')}",`);
  let denseEncoded = brotli(dense);
  while (denseEncoded.length * 80 < dense.length) {
    pad = Math.ceil(pad * 1.2);
    dense = manyObjects(denseSize, `"pad":"${randomBytes(pad).toString('base64')}",`);
    denseEncoded = brotli(dense);
  }
  return [
    {
      // The control: the same loop with an ordinary call, what any client in a loop costs the rest.
      name: 'ordinary',
      describe: `the probe's own ${PROBE_BODY.length} B body in ${brotli(Buffer.from(PROBE_BODY)).length} B of brotli`,
      bytes: brotli(Buffer.from(PROBE_BODY)),
      decodedBytes: PROBE_BODY.length,
    },
    {
      name: 'bomb',
      describe: `${bomb.length} B of {} in ${brotli(bomb).length} B of brotli`,
      bytes: brotli(bomb),
      decodedBytes: bomb.length,
    },
    {
      name: 'dense',
      describe: `${dense.length} B (about 5.5 million {}) in ${denseEncoded.length} B of brotli (${fixed(dense.length / denseEncoded.length, 0)}:1)`,
      bytes: denseEncoded,
      decodedBytes: dense.length,
    },
  ];
}

function post(
  url: string,
  body: Buffer | string,
  headers: Record<string, string>,
  agent: Agent | false,
  timeoutMs: number,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        agent,
        headers: {
          authorization: `Bearer ${USER_TOKEN}`,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
          ...headers,
        },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', reject);
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

interface Latencies {
  p50: number;
  p99: number;
  max: number;
  calls: number;
  failures: number;
}

function percentile(sorted: readonly number[], share: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(share * sorted.length) - 1)]!;
}

/** Mapped provider calls one after another on one keep-alive connection, for `seconds`. */
async function probe(base: string, seconds: number): Promise<Latencies> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const times: number[] = [];
  let failures = 0;
  const until = performance.now() + seconds * 1000;
  try {
    while (performance.now() < until) {
      const started = performance.now();
      const status = await post(base + MESSAGES_PATH, PROBE_BODY, {}, agent, PROBE_TIMEOUT_MS).catch(() => 0);
      const elapsed = performance.now() - started;
      times.push(elapsed);
      if (status !== 200) failures++;
    }
  } finally {
    agent.destroy();
  }
  const sorted = times.sort((a, b) => a - b);
  return {
    p50: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99),
    max: sorted[sorted.length - 1] ?? Number.NaN,
    calls: sorted.length,
    failures,
  };
}

interface Attack {
  /** Answers the proxy gave the worst bodies, by status (0: no answer). */
  statuses: Record<number, number>;
  stop(): Promise<void>;
}

/** `ATTACKERS` loops, each sending `body` on a fresh connection as soon as the last one is answered. */
function attack(base: string, body: WorstBody): Attack {
  const statuses: Record<number, number> = {};
  let running = true;
  const loop = async (): Promise<void> => {
    while (running) {
      const status = await post(
        base + MESSAGES_PATH,
        body.bytes,
        { 'content-encoding': 'br' },
        false,
        ATTACK_TIMEOUT_MS,
      ).catch(() => 0);
      statuses[status] = (statuses[status] ?? 0) + 1;
    }
  };
  const loops = Array.from({ length: ATTACKERS }, loop);
  return {
    statuses,
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

export interface WorstBodyRun {
  readonly name: string;
  readonly describe: string;
  readonly latency: Latencies;
  /** Highest heapUsed of the proxy during the run, garbage included. */
  readonly heapPeak: number;
  /** How late the proxy's event loop ran (p99 and max, ms): how long one callback held it. */
  readonly loopDelay: { p99: number; max: number };
  readonly statuses: Record<number, number>;
}

export interface WorstBodyFigures {
  /** heapUsed after a forced GC, before any run. */
  readonly heapAtRest: number;
  readonly idle: WorstBodyRun;
  readonly attacks: readonly WorstBodyRun[];
  /** Ordinary traffic through this build's mapped proxy, and through the baseline build's. */
  readonly rate: Rate;
  readonly baselineRate: Rate | undefined;
}

/** Medians over the rounds: POST req/s at c=50, and the proxy's CPU µs per request meanwhile. */
interface Rate {
  readonly perSecond: number;
  readonly cpuPerRequest: number;
}

function startMapped(upstream: string, builtPackage?: string) {
  const previous = process.env.BENCH_PACKAGE;
  if (builtPackage) process.env.BENCH_PACKAGE = builtPackage;
  try {
    return startChild<ProxyCommands>('proxy.ts', ['amp', upstream, 'mapped']);
  } finally {
    if (builtPackage) process.env.BENCH_PACKAGE = previous;
    if (previous === undefined) delete process.env.BENCH_PACKAGE;
  }
}

async function requestRate(proxy: Child<ProxyCommands>): Promise<Rate> {
  const before = await proxy.call('cpu');
  const result = await load(proxy.url, {
    method: 'POST',
    path: MESSAGES_PATH,
    connections: 50,
    seconds: RATE_SECONDS,
  });
  const cpu = (await proxy.call('cpu')) - before;
  if (result.failures > 0) throw new Error(`${result.failures} of ${result.responses} requests failed`);
  return { perSecond: result.requestsPerSecond, cpuPerRequest: cpu / result.responses };
}

const medianRate = (samples: readonly Rate[]): Rate => ({
  perSecond: median(samples.map((sample) => sample.perSecond)),
  cpuPerRequest: median(samples.map((sample) => sample.cpuPerRequest)),
});

/**
 * This build's mapped proxy against the baseline build's, alternating, on ordinary bodies. CPU
 * per request is the steadier figure on a shared machine: req/s moves with other processes' load.
 */
async function measureRates(
  proxy: Child<ProxyCommands>,
  upstream: string,
  log: (line: string) => void,
): Promise<{ rate: Rate; baselineRate: Rate | undefined }> {
  const baseline = BASELINE ? await startMapped(upstream, BASELINE) : undefined;
  const show = (rate: Rate): string =>
    `${fixed(rate.perSecond, 0)} req/s, ${fixed(rate.cpuPerRequest, 1)} µs CPU each`;
  try {
    const samples: { current: Rate[]; baseline: Rate[] } = { current: [], baseline: [] };
    for (const child of [proxy, baseline]) if (child) await requestRate(child); // warm-up
    for (let round = 1; round <= RATE_ROUNDS; round++) {
      // Alternating which goes first, so that neither always follows the other's garbage.
      const order = round % 2 === 1 ? [proxy, baseline] : [baseline, proxy];
      for (const child of order) {
        if (!child) continue;
        (child === proxy ? samples.current : samples.baseline).push(await requestRate(child));
      }
      log(
        `mapped proxy round ${round}: ${show(samples.current.at(-1)!)}${baseline ? `; baseline ${show(samples.baseline.at(-1)!)}` : ''}`,
      );
    }
    return {
      rate: medianRate(samples.current),
      baselineRate: baseline ? medianRate(samples.baseline) : undefined,
    };
  } finally {
    await baseline?.stop();
  }
}

/** Runs the phase on an amp proxy of its own (with the model mapping) behind `upstream`. */
export async function measureWorstBody(
  upstream: string,
  log: (line: string) => void,
): Promise<WorstBodyFigures> {
  const bodies = RATE_ONLY ? [] : worstBodies();
  const proxy = await startMapped(upstream);
  try {
    await probe(proxy.url, 2); // compiles the paths
    const heapAtRest = (await proxy.call('memory')).heapUsed;
    const run = async (name: string, describe: string, body?: WorstBody): Promise<WorstBodyRun> => {
      await proxy.call('heap-start');
      await proxy.call('loop-start');
      const attacking = body && attack(proxy.url, body);
      const latency = await probe(proxy.url, SECONDS);
      await attacking?.stop();
      const loopDelay = await proxy.call('loop-stop');
      const heapPeak = await proxy.call('heap-stop');
      const result = { name, describe, latency, heapPeak, loopDelay, statuses: attacking?.statuses ?? {} };
      log(
        `worst body ${name}: p50 ${fixed(latency.p50, 2)} ms, p99 ${fixed(latency.p99, 2)} ms, max ${fixed(latency.max, 0)} ms, ` +
          `${latency.calls} calls (${latency.failures} failed); heap peak ${fixed(heapPeak / MB, 1)} MB; ` +
          `event loop delay p99 ${fixed(loopDelay.p99, 1)} ms, max ${fixed(loopDelay.max, 1)} ms; ` +
          `worst bodies answered ${JSON.stringify(result.statuses)}`,
      );
      return result;
    };
    const idle = await run('idle', 'no attacker');
    const attacks: WorstBodyRun[] = [];
    if (!RATE_ONLY) for (const body of bodies) attacks.push(await run(body.name, body.describe, body));
    return { heapAtRest, idle, attacks, ...(await measureRates(proxy, upstream, log)) };
  } finally {
    await proxy.stop();
  }
}

export function reportWorstBody(report: Report, figures: WorstBodyFigures): void {
  const { idle } = figures;
  if (figures.baselineRate !== undefined) {
    report.ampRatio(
      'mapped proxy: req/s POST, ordinary body (c=50)',
      { label: 'baseline build', value: figures.baselineRate.perSecond },
      { label: 'this build', value: figures.rate.perSecond },
      0,
    );
    report.ampRatio(
      'mapped proxy: CPU per ordinary POST (µs)',
      { label: 'baseline build', value: figures.baselineRate.cpuPerRequest },
      { label: 'this build', value: figures.rate.cpuPerRequest },
      1,
    );
  }
  for (const attack of figures.attacks) {
    const label = `${attack.name} x${ATTACKERS}`;
    report.ampRatio(
      `mapped call p99 (ms) while ${attack.name} bodies arrive (${attack.describe})`,
      { label: 'idle', value: idle.latency.p99 },
      { label, value: attack.latency.p99 },
      2,
    );
    report.ampRatio(
      'proxy event-loop delay, max (ms)',
      { label: 'idle', value: idle.loopDelay.max },
      { label, value: attack.loopDelay.max },
      1,
    );
    report.ampRatio(
      'proxy heap peak (MB)',
      { label: 'idle', value: idle.heapPeak / MB },
      { label, value: attack.heapPeak / MB },
      1,
    );
    const latencyRatio = attack.latency.p99 / idle.latency.p99;
    report.target(
      `p99 under ${attack.name}`,
      latencyRatio <= 2 && attack.latency.failures === 0,
      `${fixed(latencyRatio, 2)}x idle, ${attack.latency.failures} failed, needs <= 2x and none`,
    );
    const heapRatio = attack.heapPeak / idle.heapPeak;
    report.target(
      `heap under ${attack.name}`,
      heapRatio <= 2,
      `${fixed(heapRatio, 2)}x idle peak, needs <= 2x`,
    );
  }
}

async function main(): Promise<void> {
  const log = (line: string): void => void process.stderr.write(`bench: ${line}\n`);
  const upstream = await startChild<UpstreamCommands>('upstream.ts', []);
  try {
    const figures = await measureWorstBody(upstream.url, log);
    const report = new Report();
    reportWorstBody(report, figures);
    process.stdout.write(`heap at rest (after GC): ${fixed(figures.heapAtRest / MB, 1)} MB\n`);
    process.stdout.write(
      `mapped proxy, ordinary POST (c=50): ${fixed(figures.rate.perSecond, 0)} req/s, ${fixed(figures.rate.cpuPerRequest, 1)} µs CPU each\n`,
    );
    process.stdout.write(`${report.render()}\n`);
  } finally {
    await upstream.stop();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    killAllChildren();
    process.exit(1);
  });
}
