/**
 * `npm run bench`: the Amp router against a hand-written http-proxy-middleware baseline, each in
 * its own process, behind the same fake upstream. Every metric alternates bare, amp, bare, amp…
 * so that machine noise hits both alike, and reports the median. The table goes to stdout,
 * progress to stderr.
 *
 * BENCH_QUICK=1     a ~30 s smoke run (1 round, short loads)
 * BENCH_ROUNDS=N    rounds per metric (default 6 for req/s, 3 for the rest)
 * BENCH_IDLE=N      idle SSE streams / WebSockets held open at once (default 1000)
 * BENCH_PROFILE=amp|bare|mapped|clients  write a --cpu-prof of that proxy's load phases (mapped:
 *                  of the amp proxy with a model mapping, during the streaming phase; clients: of the
 *                  amp process of phase 4) to .tmp/bench-profiles
 * BENCH_ONLY=keys  phase 4 alone: what recognising gateway keys costs (about 1 minute)
 * WORST_SECONDS, WORST_BASELINE  see bench/worst-body.ts (phase 1c)
 * BENCH_BASELINE=hpm3  the bare proxy on http-proxy-middleware 3 + http-proxy (the engine amp
 *                  left) instead of 4 + httpxy, for the record
 */
import { Agent } from 'node:http';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { killAllChildren, startChild, type Child } from './children.js';
import { measureWorstBody, reportWorstBody } from './worst-body.js';
import {
  BENCH_CLIENTS,
  benchGatewayKey,
  MAPPED_MODEL,
  MAPPED_TO,
  SERVER_KEY,
  UNMAPPED_MODEL,
  USER_TOKEN,
  type ProxyCommands,
  type UpstreamCommands,
} from './protocol.js';
import { fixed, KINDS, median, Report, signed, type Kind, type PerKind } from './report.js';
import {
  cliHeaders,
  download,
  fetchJson,
  load,
  MESSAGES_PATH,
  openIdleStream,
  openMany,
  openWebSocket,
  streamMessage,
  THREAD_PATH,
  timeToFirstEvent,
  upload,
  type Held,
  type HeldSocket,
} from './traffic.js';

const MB = 1024 * 1024;
const KB = 1024;
const quick = process.env.BENCH_QUICK === '1';
const roundsOverride = process.env.BENCH_ROUNDS === undefined ? undefined : Number(process.env.BENCH_ROUNDS);
const settings = {
  rounds: roundsOverride ?? (quick ? 1 : 3),
  // Single runs of req/s vary by ±7% on a small VM, so that median takes more of them.
  rateRounds: roundsOverride ?? (quick ? 1 : 6),
  warmupSeconds: quick ? 1 : 2,
  loadSeconds: quick ? 2 : 4,
  latencySeconds: quick ? 1 : 3,
  sseSamples: quick ? 5 : 20,
  idle: Number(process.env.BENCH_IDLE ?? 1000),
  transferRepeats: quick ? 1 : 3,
  /** Text deltas per streamed call, and calls per CPU sample, in the mapped-stream phase. */
  streamDeltas: 2000,
  streamCalls: quick ? 3 : 10,
  downloadBytes: 50 * MB,
  uploadBytes: 20 * MB,
};
const profiled = process.env.BENCH_PROFILE;
const keysOnly = process.env.BENCH_ONLY === 'keys';
if (process.env.BENCH_ONLY !== undefined && !keysOnly) throw new Error('BENCH_ONLY takes one value: keys');
const profileDir = fileURLToPath(new URL('../.tmp/bench-profiles', import.meta.url));
const baselineModule =
  process.env.BENCH_BASELINE === 'hpm3' ? 'http-proxy-middleware-v3' : 'http-proxy-middleware';
if (process.env.BENCH_BASELINE !== undefined && process.env.BENCH_BASELINE !== 'hpm3') {
  throw new Error('BENCH_BASELINE takes one value: hpm3');
}
/** Round trips per socket in one CPU sample of the WebSocket relay. */
const RELAY_EXCHANGES = 5;
const RELAY_MESSAGE = Buffer.alloc(256, 'relay ');
const DEADLINE_MS = 10 * 60_000;

type Proxy = Child<ProxyCommands>;

function log(message: string): void {
  process.stderr.write(`bench: ${message}\n`);
}

/** The soft open-files limit on Linux; undefined where /proc is not available. */
function openFilesLimit(): number | undefined {
  try {
    const match = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return match?.[1] === 'unlimited' ? Infinity : match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

function checkOpenFilesLimit(): void {
  // The proxy holds two sockets per idle stream (client side and upstream side).
  const needed = 2 * settings.idle + 256;
  const limit = openFilesLimit();
  log(`open-files limit ${limit ?? 'unknown'}, needed about ${needed}`);
  if (limit !== undefined && limit < needed) {
    settings.idle = Math.floor((limit - 256) / 2);
    log(`only ${settings.idle} idle streams fit under the open-files limit (raise it with ulimit -n)`);
  }
}

function startProxy(kind: Kind, upstream: string, execArgv: string[] = []): Promise<Proxy> {
  return startChild<ProxyCommands>('proxy.ts', [kind, upstream], execArgv);
}

function profileArgs(name: string): string[] {
  return profiled === name ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [];
}

/** Both proxies must do the job before their speed means anything. */
async function checkProxy(kind: Kind, base: string): Promise<void> {
  const provider = await fetchJson(base + MESSAGES_PATH, 'POST');
  if (provider.authorization !== `Bearer ${SERVER_KEY}` || provider.apiKey !== SERVER_KEY) {
    throw new Error(`${kind}: the provider request reached the upstream with ${JSON.stringify(provider)}`);
  }
  const thread = await fetchJson(base + THREAD_PATH, 'GET');
  const expected = kind === 'amp' ? `Bearer ${USER_TOKEN}` : `Bearer ${SERVER_KEY}`;
  if (thread.authorization !== expected) {
    throw new Error(`${kind}: the thread request reached the upstream with ${JSON.stringify(thread)}`);
  }
}

/** Runs `measure` for bare, amp, bare, amp… and returns each one's median. */
async function interleaved(
  label: string,
  measure: (kind: Kind) => Promise<number>,
  rounds = settings.rounds,
): Promise<PerKind> {
  const samples: Record<Kind, number[]> = { bare: [], amp: [] };
  for (let round = 1; round <= rounds; round++) {
    for (const kind of KINDS) {
      const value = await measure(kind);
      samples[kind].push(value);
      log(`${label} round ${round} ${kind}: ${fixed(value, 3)}`);
    }
  }
  return { bare: median(samples.bare), amp: median(samples.amp) };
}

function perKind(make: (kind: Kind) => number): PerKind {
  return { bare: make('bare'), amp: make('amp') };
}

async function waitUntil(condition: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && !(await condition())) await sleep(100);
}

interface StreamCpu {
  /** Microseconds of the amp process's CPU time per SSE event, medians over the rounds. */
  passthrough: number;
  mapped: number;
}

/**
 * What rewriting a mapped call's event stream costs. One amp process with a model mapping (in its
 * own process: the mapping makes the router read every provider POST body, which the other
 * phases must not pay) serves the same stream for a mapped model, whose every event goes through
 * the rewriter, and for an unmapped one, which is piped as it came; the samples alternate.
 */
async function measureStreamCpu(upstream: string): Promise<StreamCpu> {
  const proxy = await startChild<ProxyCommands>(
    'proxy.ts',
    ['amp', upstream, 'mapped'],
    profileArgs('mapped'),
  );
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const deltas = settings.streamDeltas;
  const call = async (model: string): Promise<{ events: number; text: string }> => {
    const seen = await streamMessage(proxy.url, agent, model, deltas);
    const mapped = model === MAPPED_MODEL;
    const problems = [
      seen.upstreamModel !== (mapped ? MAPPED_TO : model) &&
        `the upstream was asked for ${seen.upstreamModel}, not ${mapped ? MAPPED_TO : model}`,
      seen.clientModel !== model && `message_start names ${seen.clientModel}, not the requested ${model}`,
      seen.leaked && `the stream still names ${seen.upstreamModel} somewhere`,
      seen.deltas !== deltas && `${seen.deltas} of ${deltas} text deltas arrived`,
    ].filter(Boolean);
    if (problems.length > 0) throw new Error(`streamed call for ${model}: ${problems.join('; ')}`);
    return seen;
  };
  try {
    // Beyond the model name, the rewriter must leave the stream byte for byte as it came.
    const passthrough = (await call(UNMAPPED_MODEL)).text;
    const mapped = (await call(MAPPED_MODEL)).text;
    const expected = passthrough.replace(`"model":"${UNMAPPED_MODEL}"`, `"model":"${MAPPED_MODEL}"`);
    if (mapped !== expected) {
      throw new Error('the mapped stream differs from the pass-through one by more than its model name');
    }
    log(`mapped stream: upstream served ${MAPPED_TO}, client got ${MAPPED_MODEL} back in message_start`);
    // Warm-up: compiles both paths.
    for (let i = 0; i < 5; i++) for (const model of [UNMAPPED_MODEL, MAPPED_MODEL]) await call(model);

    const samples: Record<'passthrough' | 'mapped', number[]> = { passthrough: [], mapped: [] };
    for (let round = 1; round <= settings.rateRounds; round++) {
      for (const [key, model] of [
        ['passthrough', UNMAPPED_MODEL],
        ['mapped', MAPPED_MODEL],
      ] as const) {
        let events = 0;
        const before = await proxy.call('cpu');
        for (let i = 0; i < settings.streamCalls; i++) events += (await call(model)).events;
        const perEvent = ((await proxy.call('cpu')) - before) / events;
        samples[key].push(perEvent);
        log(`SSE CPU per event round ${round} ${model}: ${fixed(perEvent, 3)} µs`);
      }
    }
    return { passthrough: median(samples.passthrough), mapped: median(samples.mapped) };
  } finally {
    agent.destroy();
    await proxy.stop();
  }
}

interface Transfers {
  /** MB/s, the median of a few transfers (one alone lasts a fraction of a second). */
  downloadSpeed: number;
  /** MB, over those transfers. */
  downloadPeak: number;
  uploadSpeed: number;
  uploadPeak: number;
}

/** On a fresh process, so that earlier phases do not inflate its RSS. */
async function measureTransfers(kind: Kind, upstream: string): Promise<Transfers> {
  const proxy = await startProxy(kind, upstream);
  try {
    await download(proxy.url, MB);
    await upload(proxy.url, MB);
    const measure = async (transfer: () => Promise<number>, bytes: number): Promise<[number, number]> => {
      const speeds: number[] = [];
      await proxy.call('peak-start');
      for (let i = 0; i < settings.transferRepeats; i++) speeds.push(bytes / MB / (await transfer()));
      return [median(speeds), (await proxy.call('peak-stop')) / MB];
    };
    const [downloadSpeed, downloadPeak] = await measure(
      () => download(proxy.url, settings.downloadBytes),
      settings.downloadBytes,
    );
    const [uploadSpeed, uploadPeak] = await measure(
      () => upload(proxy.url, settings.uploadBytes),
      settings.uploadBytes,
    );
    return { downloadSpeed, downloadPeak, uploadSpeed, uploadPeak };
  } finally {
    await proxy.stop();
  }
}

interface IdleCost {
  rssPerStream: number;
  heapPerStream: number;
  /** Upstream streams still open 2 s after every client went away. */
  leftOpen: number;
  /** Microseconds of the proxy's CPU per message relayed while all of them exchange messages. */
  relayCpu?: number;
}

/**
 * The proxy's CPU per relayed message while every socket sends a message and waits for its echo,
 * all at once, RELAY_EXCHANGES times per sample (a message each way counts as two); the median of
 * the samples, after one exchange that compiles the relay paths.
 */
async function relayCpu(proxy: Proxy, sockets: readonly HeldSocket[]): Promise<number> {
  const exchange = () => Promise.all(sockets.map((socket) => socket.echo(RELAY_MESSAGE)));
  await exchange();
  const samples: number[] = [];
  for (let round = 0; round < settings.rounds; round++) {
    const before = await proxy.call('cpu');
    for (let i = 0; i < RELAY_EXCHANGES; i++) await exchange();
    samples.push(((await proxy.call('cpu')) - before) / (2 * RELAY_EXCHANGES * sockets.length));
  }
  return median(samples);
}

async function idleCost<T extends Held>(
  kind: Kind,
  upstream: Child<UpstreamCommands>,
  what: 'sse' | 'ws',
  open: (base: string) => Promise<T>,
  relay?: (proxy: Proxy, held: readonly T[]) => Promise<number>,
): Promise<IdleCost> {
  const openUpstream = async (): Promise<number> => (await upstream.call('open-streams'))[what];
  const proxy = await startProxy(kind, upstream.url);
  try {
    // A few streams first load and compile the code paths. Heavier warm-up (a burst of load)
    // leaves freed pages behind that the streams then fill without growing RSS, hiding their cost.
    for (const warm of await openMany(20, 20, () => open(proxy.url))) warm.close();
    await sleep(200);
    const baseline = await openUpstream();
    const before = await proxy.call('memory');
    const held = await openMany(settings.idle, 100, () => open(proxy.url));
    await sleep(1000);
    const after = await proxy.call('memory');
    const relayed = relay && (await relay(proxy, held));
    for (const item of held) item.close();
    await waitUntil(async () => (await openUpstream()) <= baseline, 2000);
    const leftOpen = Math.max(0, (await openUpstream()) - baseline);
    const cost: IdleCost = {
      rssPerStream: (after.rss - before.rss) / settings.idle / KB,
      heapPerStream: (after.heapUsed - before.heapUsed) / settings.idle / KB,
      leftOpen,
      relayCpu: relayed,
    };
    log(
      `${settings.idle} idle ${what} via ${kind}: ${fixed(cost.rssPerStream, 1)} KB RSS, ${fixed(cost.heapPerStream, 1)} KB heap each, ${leftOpen} left open upstream` +
        (relayed === undefined ? '' : `, ${fixed(relayed, 2)} µs CPU per relayed message`),
    );
    return cost;
  } finally {
    await proxy.stop();
    // Whatever the proxy left open upstream closes with its process; the next phase starts clean.
    await waitUntil(async () => (await openUpstream()) === 0, 5000);
  }
}

interface KeyRecognitionCost {
  /** Microseconds of the amp process's CPU time per request, medians over the rounds. */
  noClients: number;
  clients: number;
  /** The median of each round's clients / noClients: rounds pair samples taken moments apart. */
  ratio: number;
  /** Microseconds of CPU per request that recognising keys takes, measured on its own. */
  recognition: number;
}

/**
 * What recognising gateway keys costs. One amp process serves the same provider calls, each with
 * about 4 KB of Amp CLI headers, through two routers: one without clients (nothing is examined)
 * and one with BENCH_CLIENTS gateway clients (every header, the query and the path are examined
 * for any of their keys, and the caller's key is looked up). Each sample is the process's CPU
 * time over one load run on one router divided by the responses it sent; rounds take one sample
 * of each, in alternating order. The cost is a few per cent, within the noise of whole-request
 * CPU on a shared machine (an A/A run of two identical routers varies by ±15% per round), so the
 * verdict is on the recogniser's own CPU time per request (the process measures it on the header
 * objects of requests it served, see proxy.ts) as a share of a whole request's without clients.
 */
async function measureKeyRecognition(upstream: string): Promise<KeyRecognitionCost> {
  const proxy = await startChild<ProxyCommands>(
    'proxy.ts',
    ['amp', upstream, 'clients'],
    profileArgs('clients'),
  );
  const paths = { noClients: `/no-clients${MESSAGES_PATH}`, clients: `/clients${MESSAGES_PATH}` };
  const headers = cliHeaders(`Bearer ${benchGatewayKey(BENCH_CLIENTS - 1)}`);
  try {
    // The clients router must really recognise keys, or its numbers mean nothing.
    for (const path of Object.values(paths)) {
      const seen = await fetchJson(proxy.url + path, 'POST', headers);
      if (seen.authorization !== `Bearer ${SERVER_KEY}`) {
        throw new Error(`a provider call reached the upstream with ${JSON.stringify(seen)}`);
      }
    }
    const refused = async (extra: Record<string, string>, status: number): Promise<void> => {
      const outcome = await fetchJson(proxy.url + paths.clients, 'POST', { ...headers, ...extra }).then(
        () => 'HTTP 200',
        (error: unknown) => String(error),
      );
      if (!outcome.includes(`HTTP ${status}`)) throw new Error(`expected HTTP ${status}, got ${outcome}`);
    };
    await refused({ authorization: 'Bearer gwk_not-a-client-key-0000000000000' }, 401);
    await refused({ 'x-amp-note-0': `see ${benchGatewayKey(7)}` }, 400);
    log(`key recognition: ${BENCH_CLIENTS} clients, ${JSON.stringify(headers).length} bytes of headers`);

    const measure = async (path: string, seconds: number): Promise<number> => {
      const before = await proxy.call('cpu');
      const result = await load(proxy.url, { method: 'POST', path, connections: 50, seconds, headers });
      const cpu = (await proxy.call('cpu')) - before;
      if (result.failures > 0) throw new Error(`${result.failures} of ${result.responses} requests failed`);
      return cpu / result.responses;
    };
    for (const path of Object.values(paths)) await measure(path, settings.warmupSeconds);
    const samples: { noClients: number; clients: number }[] = [];
    for (let round = 1; round <= 2 * settings.rateRounds; round++) {
      const sample = { noClients: 0, clients: 0 };
      const order =
        round % 2 === 1 ? (['noClients', 'clients'] as const) : (['clients', 'noClients'] as const);
      for (const which of order) sample[which] = await measure(paths[which], settings.loadSeconds);
      samples.push(sample);
      log(
        `CPU per request round ${round}: ${fixed(sample.noClients, 2)} µs without clients, ${fixed(sample.clients, 2)} µs with ${BENCH_CLIENTS}`,
      );
    }
    return {
      noClients: median(samples.map((sample) => sample.noClients)),
      clients: median(samples.map((sample) => sample.clients)),
      ratio: median(samples.map((sample) => sample.clients / sample.noClients)),
      recognition: await proxy.call('recognition'),
    };
  } finally {
    await proxy.stop();
  }
}

function reportKeyRecognition(report: Report, cost: KeyRecognitionCost): void {
  report.ampRatio(
    'amp CPU per provider call, 4 KB of CLI headers (µs)',
    { label: 'no clients', value: cost.noClients },
    { label: `${BENCH_CLIENTS} clients`, value: cost.clients },
    2,
  );
  const share = cost.recognition / cost.noClients;
  report.target(
    'key recognition CPU',
    share <= 0.03,
    `${fixed(cost.recognition, 1)} µs per call, ${fixed(100 * share, 1)}% of a call without clients (end to end ${fixed(cost.ratio, 3)}x, median of rounds), needs <= 3%`,
  );
}

/** Phases 1 to 3: the amp router against the bare proxy, each on processes of its own. */
async function compareWithBare(upstream: Child<UpstreamCommands>, report: Report): Promise<void> {
  checkOpenFilesLimit();
  const failures: PerKind = { bare: 0, amp: 0 };
  // Phase 1: request rate, latency and SSE on one long-lived process per proxy.
  const proxies: Record<Kind, Proxy> = {
    bare: await startProxy('bare', upstream.url, profileArgs('bare')),
    amp: await startProxy('amp', upstream.url, profileArgs('amp')),
  };
  for (const kind of KINDS) await checkProxy(kind, proxies[kind].url);
  log('both proxies swap credentials as expected; warming up');
  for (const kind of KINDS) {
    for (const [method, path] of [
      ['POST', MESSAGES_PATH],
      ['GET', THREAD_PATH],
    ] as const) {
      await load(proxies[kind].url, { method, path, connections: 50, seconds: settings.warmupSeconds });
    }
  }

  const rate = (method: 'GET' | 'POST', path: string) => async (kind: Kind) => {
    const result = await load(proxies[kind].url, {
      method,
      path,
      connections: 50,
      seconds: settings.loadSeconds,
    });
    failures[kind] += result.failures;
    return result.requestsPerSecond;
  };
  const postRate = await interleaved('POST req/s', rate('POST', MESSAGES_PATH), settings.rateRounds);
  const getRate = await interleaved('GET req/s', rate('GET', THREAD_PATH), settings.rateRounds);
  const p50 = await interleaved('c=1 p50 ms', async (kind) => {
    const result = await load(proxies[kind].url, {
      method: 'POST',
      path: MESSAGES_PATH,
      connections: 1,
      seconds: settings.latencySeconds,
    });
    failures[kind] += result.failures;
    return result.p50;
  });
  const firstEvent = await interleaved('SSE first event ms', async (kind) => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      // The first requests open the connection and compile the streaming paths; not sampled.
      for (let i = 0; i < 5; i++) await timeToFirstEvent(proxies[kind].url, agent);
      const samples: number[] = [];
      for (let i = 0; i < settings.sseSamples; i++)
        samples.push(await timeToFirstEvent(proxies[kind].url, agent));
      return median(samples);
    } finally {
      agent.destroy();
    }
  });
  for (const kind of KINDS) await proxies[kind].stop();

  // Phase 1b: a mapped streaming call against a pass-through one, on an amp proxy of its own.
  const streamCpu = await measureStreamCpu(upstream.url);
  // Phase 1c: one client's worst bodies against another's latency (bench/worst-body.ts).
  const worstBody = await measureWorstBody(upstream.url, log);

  // Phase 2: large transfers.
  const transfers: Record<Kind, Transfers[]> = { bare: [], amp: [] };
  for (let round = 1; round <= settings.rounds; round++) {
    for (const kind of KINDS) {
      const result = await measureTransfers(kind, upstream.url);
      transfers[kind].push(result);
      log(
        `transfers round ${round} ${kind}: down ${fixed(result.downloadSpeed, 0)} MB/s peak ${fixed(result.downloadPeak, 1)} MB, up ${fixed(result.uploadSpeed, 0)} MB/s peak ${fixed(result.uploadPeak, 1)} MB`,
      );
    }
  }
  const transfer = (key: keyof Transfers): PerKind =>
    perKind((kind) => median(transfers[kind].map((result) => result[key])));

  // Phase 3: what an idle stream costs, each kind on a fresh process.
  const sse: Record<Kind, IdleCost> = {
    bare: await idleCost('bare', upstream, 'sse', openIdleStream),
    amp: await idleCost('amp', upstream, 'sse', openIdleStream),
  };
  const ws: Record<Kind, IdleCost> = {
    bare: await idleCost('bare', upstream, 'ws', openWebSocket, relayCpu),
    amp: await idleCost('amp', upstream, 'ws', openWebSocket, relayCpu),
  };

  const downloadPeak = transfer('downloadPeak');
  const uploadPeak = transfer('uploadPeak');
  report.ratio(`req/s POST ${MESSAGES_PATH} (c=50)`, postRate, 0);
  report.ratio(`req/s GET ${THREAD_PATH} (c=50)`, getRate, 0);
  report.difference('p50 latency POST, c=1 (ms)', p50, 3, 'ms');
  report.difference('SSE time to first event (ms)', firstEvent, 3, 'ms');
  report.ratio(`${settings.downloadBytes / MB} MB download (MB/s)`, transfer('downloadSpeed'), 0);
  report.ratio(`peak RSS during ${settings.downloadBytes / MB} MB download (MB)`, downloadPeak, 1);
  report.ratio(`${settings.uploadBytes / MB} MB upload (MB/s)`, transfer('uploadSpeed'), 0);
  report.ratio(`peak RSS during ${settings.uploadBytes / MB} MB upload (MB)`, uploadPeak, 1);
  report.ratio(
    `${settings.idle} idle SSE streams: RSS per stream (KB)`,
    perKind((k) => sse[k].rssPerStream),
    1,
  );
  report.ratio(
    `${settings.idle} idle SSE streams: heap per stream (KB)`,
    perKind((k) => sse[k].heapPerStream),
    1,
  );
  report.ratio(
    `${settings.idle} idle WebSockets: RSS per socket (KB)`,
    perKind((k) => ws[k].rssPerStream),
    1,
  );
  report.ratio(
    `${settings.idle} idle WebSockets: heap per socket (KB)`,
    perKind((k) => ws[k].heapPerStream),
    1,
  );
  report.ratio(
    `${settings.idle} WebSockets relaying: CPU per message (µs)`,
    perKind((k) => ws[k].relayCpu ?? Number.NaN),
    2,
  );
  report.plain(
    'upstream SSE streams still open 2 s after clients left',
    perKind((k) => sse[k].leftOpen),
  );
  report.plain(
    'upstream WebSockets still open 2 s after clients left',
    perKind((k) => ws[k].leftOpen),
  );
  report.plain('failed requests (errors, timeouts, non-2xx) under load', failures);
  report.ampRatio(
    `amp CPU per SSE event, ${settings.streamDeltas}-delta stream (µs)`,
    { label: `${UNMAPPED_MODEL} pass-through`, value: streamCpu.passthrough },
    { label: `${MAPPED_MODEL} mapped`, value: streamCpu.mapped },
    3,
  );

  const ratioTarget = (label: string, values: PerKind, min: number): void => {
    const ratio = values.amp / values.bare;
    report.target(label, ratio >= min, `${fixed(ratio, 3)}x, needs >= ${min}x`);
  };
  const latencyTarget = (label: string, values: PerKind): void => {
    const added = values.amp - values.bare;
    report.target(label, added <= 0.3, `${signed(added, 3)} ms, needs <= +0.3 ms`);
  };
  const costTarget = (label: string, values: PerKind): void => {
    const ratio = values.amp / values.bare;
    report.target(label, ratio <= 1.1, `${fixed(ratio, 3)}x, needs <= 1.1x`);
  };
  const idleTarget = (label: string, cost: IdleCost): void => {
    report.target(label, cost.rssPerStream < 64, `${fixed(cost.rssPerStream, 1)} KB RSS, needs < 64 KB`);
  };
  ratioTarget('POST req/s', postRate, 0.95);
  ratioTarget('GET req/s', getRate, 0.95);
  latencyTarget('c=1 p50', p50);
  latencyTarget('SSE first event', firstEvent);
  costTarget('download peak RSS', downloadPeak);
  costTarget('upload peak RSS', uploadPeak);
  idleTarget('idle SSE', sse.amp);
  idleTarget('idle WebSocket', ws.amp);
  reportWorstBody(report, worstBody);
  costTarget(
    'WebSocket relay CPU',
    perKind((k) => ws[k].relayCpu ?? Number.NaN),
  );
  const rewriteCost = streamCpu.mapped / streamCpu.passthrough;
  report.target(
    'mapped SSE CPU per event',
    rewriteCost < 1.1,
    `${fixed(rewriteCost, 3)}x pass-through, needs < 1.1x`,
  );
}

async function main(): Promise<void> {
  const upstream = await startChild<UpstreamCommands>('upstream.ts', []);
  const report = new Report();
  try {
    if (!keysOnly) await compareWithBare(upstream, report);
    // Phase 4: what looking for gateway keys in every request costs.
    reportKeyRecognition(report, await measureKeyRecognition(upstream.url));
  } finally {
    await upstream.stop();
  }

  const { version } = JSON.parse(
    readFileSync(new URL(`../node_modules/${baselineModule}/package.json`, import.meta.url), 'utf8'),
  ) as { version: string };
  process.stdout.write(
    `Node ${process.version}; bare: http-proxy-middleware ${version}\n${report.render()}\n`,
  );
  if (profiled) log(`CPU profile of the ${profiled} proxy written to ${profileDir}`);
}

const watchdog = setTimeout(() => {
  log(`gave up after ${DEADLINE_MS / 60_000} minutes`);
  killAllChildren();
  process.exit(1);
}, DEADLINE_MS);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    killAllChildren();
    process.exit(130);
  });
}

main().then(
  () => clearTimeout(watchdog),
  (error: unknown) => {
    log(error instanceof Error ? (error.stack ?? error.message) : String(error));
    killAllChildren();
    process.exit(1);
  },
);
