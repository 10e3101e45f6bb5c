import { AmpProxyConfigError } from '../errors.js';

/** The target of `model` (suffix carried over), or `undefined` when no rule maps it. */
export type ModelMapper = (model: string) => string | undefined;

const THINKING_SUFFIX = /^(.*?)(\([^()]*\))$/s;

/** `gpt-5(high)` → `['gpt-5', '(high)']`; a name without a suffix has none. */
function splitSuffix(model: string): [base: string, suffix: string] {
  const match = THINKING_SUFFIX.exec(model);
  return match ? [match[1]!, match[2]!] : [model, ''];
}

function withSuffix(target: string, suffix: string): string {
  // The target's own suffix wins; an empty `()` means "no suffix" and is not carried over.
  if (splitSuffix(target)[1] !== '' || suffix === '' || suffix === '()') return target;
  return target + suffix;
}

/** One rule checked: errors name the rule's field (`modelMappings[2].from`). */
function validateRule(rule: unknown, at: string): { from: string; to: string; regex: boolean } {
  if (typeof rule !== 'object' || rule === null)
    throw new AmpProxyConfigError(at, 'expected { from, to, regex? }');
  const { from, to, regex, ...rest } = rule as Record<string, unknown>;
  const unknown = Object.keys(rest)[0];
  if (unknown)
    throw new AmpProxyConfigError(`${at}.${unknown}`, 'unknown field; a mapping has from, to and regex');
  if (typeof from !== 'string' || from.trim() === '')
    throw new AmpProxyConfigError(`${at}.from`, 'expected a model name');
  if (typeof to !== 'string' || to.trim() === '')
    throw new AmpProxyConfigError(`${at}.to`, 'expected a model name');
  if (regex !== undefined && typeof regex !== 'boolean')
    throw new AmpProxyConfigError(`${at}.regex`, 'expected true or false');
  return { from, to: to.trim(), regex: regex ?? false };
}

function compilePattern(from: string, at: string): RegExp {
  try {
    return new RegExp(from, 'i');
  } catch (error) {
    throw new AmpProxyConfigError(
      `${at}.from`,
      `is not a valid regular expression: ${(error as Error).message}`,
    );
  }
}

/**
 * Compiles the mapping rules once: exact rules (case-insensitive) win over regex rules, which are
 * tried in order; the first match wins.
 */
export function compileModelMappings(value: unknown): ModelMapper | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value)) {
    throw new AmpProxyConfigError('modelMappings', 'expected an array of { from, to, regex? }');
  }
  const exact = new Map<string, string>();
  const patterns: [RegExp, string][] = [];
  value.forEach((rule: unknown, index) => {
    const at = `modelMappings[${index}]`;
    const { from, to, regex } = validateRule(rule, at);
    if (regex) patterns.push([compilePattern(from, at), to]);
    else if (!exact.has(from.trim().toLowerCase())) exact.set(from.trim().toLowerCase(), to);
  });
  if (exact.size === 0 && patterns.length === 0) return undefined;

  return (model) => {
    const [base, suffix] = splitSuffix(model);
    let target = exact.get(base.toLowerCase());
    if (target === undefined) {
      for (const [pattern, to] of patterns) {
        if (pattern.test(base)) {
          target = to;
          break;
        }
      }
    }
    if (target === undefined) return undefined;
    const mapped = withSuffix(target, suffix);
    return mapped === model ? undefined : mapped;
  };
}
