import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  rewriteJsonText,
  rewriterFor,
  SseRewriter,
  type RewriteSpec,
} from '../src/provider/response-rewriter.js';

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

describe('choosing a body rewriter', () => {
  it('event streams are rewritten as they come, JSON whole, anything else not at all', () => {
    assert.equal(rewriterFor('text/event-stream; charset=utf-8', spec, 10)?.holdsWholeBody, false);
    for (const type of ['application/json', 'application/problem+json', 'Application/JSON; charset=utf-8'])
      assert.equal(rewriterFor(type, spec, 10)?.holdsWholeBody, true, type);
    for (const type of ['text/plain', 'application/octet-stream', ''])
      assert.equal(rewriterFor(type, spec, 10), undefined, type);
  });

  it('JSON is held until complete, then rewritten', () => {
    const json = rewriterFor('application/json', spec, 1024)!;
    assert.equal(json.push(Buffer.from('{"model":"claude-'))?.length, 0);
    assert.equal(json.push(Buffer.from('sonnet-4"}'))?.length, 0);
    assert.equal(String(json.end()), '{"model":"claude-opus-4"}');
  });

  it('JSON past its cap is refused, and stays refused', () => {
    const json = rewriterFor('application/json', spec, 8)!;
    assert.equal(json.push(Buffer.from('{"model"'))?.length, 0);
    assert.equal(json.push(Buffer.from(':')), undefined);
    assert.equal(json.push(Buffer.from('"x"}')), undefined);
  });
});
