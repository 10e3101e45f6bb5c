import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { MAX_TOOL_NAMES, ModelScanner, type BodyScan, type Span } from '../src/provider/model-scanner.js';

type Found = Extract<BodyScan, { kind: 'object' }>;

function scanBody(body: Uint8Array): BodyScan {
  const scanner = new ModelScanner();
  scanner.push(body);
  return scanner.end();
}

function stringAt(body: Buffer, span: Span): string {
  return JSON.parse(body.toString('utf8', span.start, span.end)) as string;
}

function scan(text: string | Buffer): BodyScan {
  return scanBody(Buffer.from(text));
}

function found(text: string | Buffer): Found {
  const result = scan(text);
  assert.equal(result.kind, 'object', `not scanned as an object: ${String(text).slice(0, 200)}`);
  return result as Found;
}

function modelOf(text: string): string | undefined {
  const result = found(text);
  return result.model && stringAt(Buffer.from(text), result.model);
}

function toolNamesOf(text: string): string[] {
  return found(text).toolNames.map((span) => stringAt(Buffer.from(text), span));
}

/** What JSON.parse makes of the body: the oracle every answer of the scanner is checked against. */
function parsed(bytes: Buffer): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(bytes.toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/** The tool names the response rewriter used to take from the parsed request, in order. */
function toolNamesFromParsed(body: Record<string, unknown>): string[] {
  const names: string[] = [];
  if (!Array.isArray(body.tools)) return names;
  for (const tool of body.tools as unknown[]) {
    if (typeof tool !== 'object' || tool === null || Array.isArray(tool)) continue;
    const { name, function: fn } = tool as { name?: unknown; function?: { name?: unknown } };
    for (const candidate of [name, fn?.name]) if (typeof candidate === 'string') names.push(candidate);
  }
  return names;
}

function countValues(value: unknown): number {
  if (Array.isArray(value)) return 1 + value.reduce((sum: number, item) => sum + countValues(item), 0);
  if (typeof value === 'object' && value !== null)
    return 1 + Object.values(value).reduce((sum: number, item) => sum + countValues(item), 0);
  return 1;
}

/** Every string as JSON, each character written plainly or as a `\uXXXX` escape, as `escaped` says. */
function escapeEvery(text: string): string {
  return `"${[...text].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join('')}"`;
}

function scanInChunks(bytes: Buffer, cuts: readonly number[]): BodyScan {
  const scanner = new ModelScanner();
  let from = 0;
  for (const cut of [...cuts].sort((a, b) => a - b)) {
    scanner.push(bytes.subarray(from, cut));
    from = cut;
  }
  scanner.push(bytes.subarray(from));
  return scanner.end();
}

describe('model scanner', () => {
  const models: [body: string, model: string | undefined][] = [
    ['{"model":"claude-opus-4"}', 'claude-opus-4'],
    [' \r\n\t{ "model" :\n "a" , "x": [1, -2.5e+3, 0, true, false, null, {}] } \n', 'a'],
    ['{"x":{"model":"nested"},"model":"top"}', 'top'],
    ['{"x":{"model":"nested"}}', undefined],
    ['{"messages":[{"model":"in-array"}]}', undefined],
    ['{"model":5}', undefined],
    ['{"model":null}', undefined],
    ['{"model":{"model":"deeper"}}', undefined],
    ['{"model":"caf\\u00e9 \\"q\\" \\\\ \\/ \\n"}', 'café "q" \\ / \n'],
    ['{"model":"\\ud83d\\ude00 astral"}', '😀 astral'],
    ['{"model":"é😀 raw utf-8"}', 'é😀 raw utf-8'],
    [`{${escapeEvery('model')}:"escaped key"}`, 'escaped key'],
    ['{"mod\\u0065l":"partly escaped key"}', 'partly escaped key'],
    ['{"Model":"other case"}', undefined],
    ['{"model ":"trailing space"}', undefined],
    ['{"model":""}', ''],
    ['{"a":"x\\"model\\":\\"fake\\"","model":"real"}', 'real'],
  ];
  for (const [body, model] of models) {
    it(`finds the top-level model in ${body}`, () => {
      assert.equal(modelOf(body), model);
      const oracle = parsed(Buffer.from(body))?.model;
      assert.equal(model, typeof oracle === 'string' ? oracle : undefined);
    });
  }

  it('counts every top-level model key, so that a body naming two can be refused', () => {
    assert.equal(found('{"model":"a","model":"b"}').modelKeys, 2);
    assert.equal(modelOf('{"model":"a","model":"b"}'), 'b'); // the one JSON.parse keeps
    assert.equal(found('{"model":"a","mod\\u0065l":5}').modelKeys, 2);
    assert.equal(modelOf('{"model":"a","mod\\u0065l":5}'), undefined);
    assert.equal(found('{"model":"a","x":{"model":"b"}}').modelKeys, 1);
  });

  const notObjects = [
    '',
    '   ',
    '[{"model":"a"}]',
    '"model"',
    '42',
    'null',
    '{"model":"a"',
    '{"model":"a"}}',
    '{"model":"a"} x',
    '{"model":"a",}',
    '{"model":"a" "b":1}',
    '{"model" "a"}',
    '{model:"a"}',
    "{'model':'a'}",
    '{"model":"a\u0001"}',
    '{"model":"a\\x"}',
    '{"model":"\\u12"}',
    '{"a":01}',
    '{"a":1.}',
    '{"a":.5}',
    '{"a":-}',
    '{"a":1e}',
    '{"a":+1}',
    '{"a":tru}',
    '{"a":True}',
    '{"a":[1,]}',
    '{"a":[1 2]}',
    '{"a":]}',
    '{"a":[}',
    '{"a":{]}',
    '{"a":NaN}',
    '\ufeff{"model":"a"}',
    '{"model":"a"}\u0000',
  ];
  for (const body of notObjects) {
    it(`refuses ${JSON.stringify(body)} as JSON.parse does`, () => {
      assert.equal(scan(body).kind, 'not-an-object');
      assert.equal(parsed(Buffer.from(body)), undefined);
    });
  }

  it('extracts tools[].name and tools[].function.name of the last tools array, as the parsed body holds them', () => {
    const body =
      '{"tools":[{"name":"Old"}],"model":"m","tools":[{"name":"Read_File","input_schema":{"name":"not-a-tool"}},' +
      '{"type":"function","function":{"name":"Bash","parameters":{"name":"nope"}}},{"name":5},"x",[{"name":"in-array"}],' +
      '{"name":"first","name":"Second"},{"function":{"name":"a"},"function":"b"},{"function":{"name":"c","name":7}}]}';
    assert.deepEqual(toolNamesOf(body), toolNamesFromParsed(parsed(Buffer.from(body))!));
    assert.deepEqual(toolNamesOf(body), ['Read_File', 'Bash', 'Second']);
    assert.deepEqual(toolNamesOf('{"tools":{"name":"x"}}'), []);
    assert.deepEqual(toolNamesOf('{"tools":[{"name":"x"}],"tools":null}'), []);
    assert.deepEqual(toolNamesOf('{"x":{"tools":[{"name":"x"}]}}'), []);
    assert.deepEqual(toolNamesOf(`{${escapeEvery('tools')}:[{${escapeEvery('name')}:"Esc"}]}`), ['Esc']);
  });

  it(`keeps at most ${MAX_TOOL_NAMES} tool names`, () => {
    const tools = Array.from({ length: MAX_TOOL_NAMES + 10 }, (_, i) => ({ name: `t${i}` }));
    const names = toolNamesOf(JSON.stringify({ model: 'm', tools }));
    assert.equal(names.length, MAX_TOOL_NAMES);
    assert.equal(names[MAX_TOOL_NAMES - 1], `t${MAX_TOOL_NAMES - 1}`);
  });

  it('counts values and the deepest nesting, for the check before a body is parsed', () => {
    const result = found('{"a":[1,{"b":[[]]}],"c":"d"}');
    assert.equal(result.values, 7);
    assert.equal(result.depth, 5);
    const deep = `{"a":${'['.repeat(10_000)}${']'.repeat(10_000)}}`;
    assert.equal(found(deep).depth, 10_001);
  });

  it('finds the same in a body cut anywhere into chunks, one byte each included', () => {
    const body = Buffer.from(
      `{"x":"é😀\\u00e9","mod\\u0065l" : "claude-opus-4","n":-12.5e-3,"tools":[{"function":{${escapeEvery('name')}:"Bash"}}],"t":true}`,
    );
    const whole = scanBody(body);
    assert.equal(whole.kind, 'object');
    const cuts = Array.from({ length: body.length - 1 }, (_, i) => i + 1);
    assert.deepEqual(scanInChunks(body, cuts), whole);
    for (let cut = 0; cut <= body.length; cut++) assert.deepEqual(scanInChunks(body, [cut]), whole);
  });

  it('every proper prefix of a body is not an object', () => {
    const body = Buffer.from('{"model":"a","n":[1.5e3,{"k":null}],"s":"\\u00e9"}');
    for (let end = 0; end < body.length; end++) {
      assert.equal(scanBody(body.subarray(0, end)).kind, 'not-an-object', body.subarray(0, end).toString());
    }
  });

  describe('properties', () => {
    // `__proto__` is left out: JSON.parse and a dictionary built by fast-check differ on it.
    const name = fc.oneof(
      fc.constantFrom('model', 'tools', 'name', 'function', 'x'),
      fc.string().filter((key) => key !== '__proto__'),
    );
    const scalar = fc.oneof(
      fc.string({ unit: 'grapheme' }),
      fc.string({ unit: 'binary' }),
      fc.double({ noNaN: true, noDefaultInfinity: true }),
      fc.integer(),
      fc.boolean(),
      fc.constant(null),
    );
    const { json } = fc.letrec((tie) => ({
      json: fc.oneof(
        { depthSize: 'small', withCrossShrink: true },
        scalar,
        fc.array(tie('json'), { maxLength: 4 }),
        fc.dictionary(name, tie('json'), { maxKeys: 4 }),
      ),
    }));
    const tool = fc.record(
      {
        name: fc.oneof(fc.string(), json),
        type: fc.constant('function'),
        function: fc.oneof(fc.record({ name: fc.oneof(fc.string(), json) }, { requiredKeys: [] }), json),
        input_schema: json,
      },
      { requiredKeys: [] },
    );
    const body = fc.record(
      {
        model: fc.oneof(fc.string({ unit: 'binary' }), json),
        messages: json,
        tools: fc.oneof(fc.array(fc.oneof(tool, json), { maxLength: 5 }), json),
        nested: fc.dictionary(name, json),
      },
      { requiredKeys: [] },
    );
    const spacing = fc.constantFrom(undefined, 0, 1, 2, '\t', ' \r\n');

    it('finds what JSON.parse finds: the model, the tool names, the values', () => {
      fc.assert(
        fc.property(body, spacing, (document, space) => {
          const bytes = Buffer.from(JSON.stringify(document, null, space as number));
          const expected = parsed(bytes)!;
          const result = scanBody(bytes);
          assert.equal(result.kind, 'object');
          const scanned = result as Found;
          assert.equal(
            scanned.model && stringAt(bytes, scanned.model),
            typeof expected.model === 'string' ? expected.model : undefined,
          );
          assert.equal(scanned.modelKeys, 'model' in expected ? 1 : 0);
          assert.deepEqual(
            scanned.toolNames.map((span) => stringAt(bytes, span)),
            toolNamesFromParsed(expected),
          );
          assert.equal(scanned.values, countValues(expected));
        }),
        { numRuns: 400 },
      );
    });

    it('splicing a new name at the span changes the model and nothing else', () => {
      fc.assert(
        fc.property(body, fc.string({ unit: 'binary' }), spacing, (document, mapped, space) => {
          const withModel = { ...document, model: 'requested' };
          const bytes = Buffer.from(JSON.stringify(withModel, null, space as number));
          const { model } = scanBody(bytes) as Found;
          assert.ok(model);
          const spliced = Buffer.concat([
            bytes.subarray(0, model.start),
            Buffer.from(JSON.stringify(mapped)),
            bytes.subarray(model.end),
          ]);
          assert.deepEqual(JSON.parse(spliced.toString('utf8')), { ...parsed(bytes), model: mapped });
        }),
        { numRuns: 300 },
      );
    });

    it('agrees with JSON.parse on whether damaged bytes are an object, however they are chunked', () => {
      fc.assert(
        fc.property(
          body,
          fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }),
          fc.array(fc.nat(), { maxLength: 4 }),
          (document, damage, cuts) => {
            const bytes = Buffer.from(JSON.stringify(document));
            for (const [at, byte] of damage) bytes[at % bytes.length] = byte;
            const expected = parsed(bytes) === undefined ? 'not-an-object' : 'object';
            assert.equal(scanBody(bytes).kind, expected);
            const chunked = scanInChunks(
              bytes,
              cuts.map((cut) => cut % (bytes.length + 1)),
            );
            assert.deepEqual(chunked, scanBody(bytes));
          },
        ),
        { numRuns: 400 },
      );
    });
  });
});
