import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileModelMappings } from '../src/provider/model-mappings.js';
import { rewriteJsonText, SseRewriter, type RewriteSpec } from '../src/provider/response-rewriter.js';
import { AmpProxyConfigError } from '../src/index.js';

describe('model mappings', () => {
  const map = compileModelMappings([
    { from: 'claude-opus-4', to: 'claude-sonnet-4' },
    { from: '^gpt-5.*$', to: 'gpt-5-mini', regex: true },
    { from: 'gpt-5-codex', to: 'o4-mini' },
    { from: 'gemini-.*-pro', to: 'gemini-2.5-flash(low)', regex: true },
    { from: '^claude-.*$', to: 'claude-haiku', regex: true },
  ])!;

  const table: [requested: string, expected: string | undefined][] = [
    ['claude-opus-4', 'claude-sonnet-4'],
    ['CLAUDE-OPUS-4', 'claude-sonnet-4'], // exact rules ignore case
    ['gpt-5-codex', 'o4-mini'], // exact wins over an earlier regex
    ['GPT-5.1', 'gpt-5-mini'], // regex rules ignore case
    ['gpt-5(high)', 'gpt-5-mini(high)'], // the thinking suffix carries over
    ['gpt-5(8192)', 'gpt-5-mini(8192)'],
    ['gpt-5()', 'gpt-5-mini'], // an empty suffix is dropped
    ['gemini-2.5-pro(high)', 'gemini-2.5-flash(low)'], // the target's own suffix wins
    ['claude-opus-4(high)', 'claude-sonnet-4(high)'],
    ['claude-3-haiku', 'claude-haiku'], // first matching regex, in order
    ['claude-haiku', undefined], // mapping onto itself is no mapping
    ['o3', undefined],
  ];
  for (const [requested, expected] of table) {
    it(`${requested} -> ${String(expected)}`, () => assert.equal(map(requested), expected));
  }

  it('invalid rules are refused in the factory, naming the rule', () => {
    assert.throws(
      () => compileModelMappings([{ from: '(', to: 'x', regex: true }]),
      (error: unknown) => {
        assert.ok(error instanceof AmpProxyConfigError);
        assert.equal(error.option, 'modelMappings[0].from');
        return true;
      },
    );
    assert.throws(() => compileModelMappings([{ from: 'a' }]), /modelMappings\[0\]\.to/);
    assert.throws(
      () => compileModelMappings([{ from: 'a', to: 'b', regexp: true }]),
      /modelMappings\[0\]\.regexp/,
    );
    assert.equal(compileModelMappings([]), undefined);
  });
});

const spec: RewriteSpec = {
  requestedModel: 'claude-opus-4',
  toolNames: new Map([
    ['read_file', 'Read_File'],
    ['bash', 'Bash'],
  ]),
};

describe('JSON response rewriting', () => {
  it('restores the requested model in every known field', () => {
    assert.equal(
      rewriteJsonText(
        '{"model":"claude-sonnet-4","message":{"model":"claude-sonnet-4"},"response":{"model":"x","modelVersion":"y"},"modelVersion":"z"}',
        spec,
      ),
      '{"model":"claude-opus-4","message":{"model":"claude-opus-4"},"response":{"model":"claude-opus-4","modelVersion":"claude-opus-4"},"modelVersion":"claude-opus-4"}',
    );
  });

  it("restores the request's tool-name casing and adds the thinking signature Amp requires", () => {
    assert.equal(
      rewriteJsonText(
        '{"model":"claude-opus-4","content":[{"type":"thinking","thinking":"hm"},{"type":"tool_use","id":"t1","name":"read_file","input":{}},{"type":"tool_use","name":"unknown_tool"}]}',
        spec,
      ),
      '{"model":"claude-opus-4","content":[{"type":"thinking","thinking":"hm","signature":""},{"type":"tool_use","id":"t1","name":"Read_File","input":{}},{"type":"tool_use","name":"unknown_tool"}]}',
    );
  });

  it('leaves text that needs nothing, or is not JSON, byte for byte', () => {
    for (const text of ['{ "model" : "claude-opus-4" }', 'not json', '[1,2]', '{"choices":[]}']) {
      assert.equal(rewriteJsonText(text, spec), text);
    }
  });
});

describe('SSE response rewriting', () => {
  const stream =
    ': keep-alive comment\n\n' +
    'event: message_start\n' +
    'data: {"type":"message_start","message":{"model":"claude-sonnet-4","content":[]}}\n\n' +
    'event: content_block_start\r\n' +
    'data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}\r\n\r\n' +
    'id: 7\n' +
    'data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","name":"bash","input":{}}}\n\n' +
    'data: {"type":"content_block_delta","delta":{"text":"héllo ✓"}}\n\n' +
    'data: [DONE]\n\n';
  const expected =
    ': keep-alive comment\n\n' +
    'event: message_start\n' +
    'data: {"type":"message_start","message":{"model":"claude-opus-4","content":[]}}\n\n' +
    'event: content_block_start\r\n' +
    'data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}\r\n\r\n' +
    'id: 7\n' +
    'data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","name":"Bash","input":{}}}\n\n' +
    'data: {"type":"content_block_delta","delta":{"text":"héllo ✓"}}\n\n' +
    'data: [DONE]\n\n';
  const bytes = Buffer.from(stream);

  it('rewrites the whole stream in one chunk', () => {
    const rewriter = new SseRewriter(spec);
    assert.equal(String(rewriter.push(bytes)) + String(rewriter.end()), expected);
  });

  it('gives the same output when split at every byte position (including inside UTF-8 characters)', () => {
    for (let at = 0; at <= bytes.length; at++) {
      const rewriter = new SseRewriter(spec);
      const out =
        String(rewriter.push(bytes.subarray(0, at))) +
        String(rewriter.push(bytes.subarray(at))) +
        String(rewriter.end());
      assert.equal(out, expected, `split at byte ${at}`);
    }
  });

  it('gives the same output fed one byte at a time, and never holds a complete line back', () => {
    const rewriter = new SseRewriter(spec);
    let out = '';
    for (let i = 0; i < bytes.length; i++) {
      out += String(rewriter.push(bytes.subarray(i, i + 1)));
      if (bytes[i] === 0x0a)
        assert.ok(expected.startsWith(out) && out.endsWith('\n'), `line held back at ${i}`);
    }
    assert.equal(out + String(rewriter.end()), expected);
  });
});
