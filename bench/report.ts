export type Kind = 'bare' | 'amp';
export const KINDS: readonly Kind[] = ['bare', 'amp'];
export type PerKind = Record<Kind, number>;

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

interface Row {
  metric: string;
  bare: string;
  amp: string;
  compare: string;
}

interface Target {
  label: string;
  pass: boolean;
  detail: string;
}

export function fixed(value: number, digits: number): string {
  return Number.isFinite(value) ? value.toFixed(digits) : 'n/a';
}

export function signed(value: number, digits: number): string {
  return `${value >= 0 ? '+' : ''}${fixed(value, digits)}`;
}

/** A row compared across two configurations of the amp proxy instead of bare and amp. */
interface AmpOnly {
  metric: string;
  base: { label: string; value: number };
  other: { label: string; value: number };
  digits: number;
}

function table(header: Row, rows: readonly Row[]): string[] {
  const all = [header, ...rows];
  const width = (key: keyof Row): number => Math.max(...all.map((row) => row[key].length));
  const [metric, bare, amp, compare] = (['metric', 'bare', 'amp', 'compare'] as const).map(width) as [
    number,
    number,
    number,
    number,
  ];
  const line = (row: Row): string =>
    `| ${row.metric.padEnd(metric)} | ${row.bare.padStart(bare)} | ${row.amp.padStart(amp)} | ${row.compare.padStart(compare)} |`;
  const rule = `| ${'-'.repeat(metric)} | ${'-'.repeat(bare - 1)}: | ${'-'.repeat(amp - 1)}: | ${'-'.repeat(compare - 1)}: |`;
  return [line(header), rule, ...rows.map(line)];
}

export class Report {
  private readonly rows: Row[] = [];
  private readonly ampOnly: AmpOnly[] = [];
  private readonly targets: Target[] = [];

  /** Compared as amp/bare. */
  ratio(metric: string, values: PerKind, digits: number): void {
    const ratio = values.amp / values.bare;
    this.rows.push({
      metric,
      bare: fixed(values.bare, digits),
      amp: fixed(values.amp, digits),
      compare: `${fixed(ratio, 2)}x`,
    });
  }

  /** Compared as amp−bare, in the metric's own unit (latencies). */
  difference(metric: string, values: PerKind, digits: number, unit: string): void {
    this.rows.push({
      metric,
      bare: fixed(values.bare, digits),
      amp: fixed(values.amp, digits),
      compare: `${signed(values.amp - values.bare, digits)} ${unit}`,
    });
  }

  /** Not compared (counts of things that should be zero). */
  plain(metric: string, values: PerKind): void {
    this.rows.push({ metric, bare: String(values.bare), amp: String(values.amp), compare: '-' });
  }

  /** Two configurations of the amp proxy, compared as other/base; rendered as a table of its own. */
  ampRatio(metric: string, base: AmpOnly['base'], other: AmpOnly['other'], digits: number): void {
    this.ampOnly.push({ metric, base, other, digits });
  }

  target(label: string, pass: boolean, detail: string): void {
    this.targets.push({ label, pass, detail });
  }

  render(): string {
    const header: Row = { metric: 'metric', bare: 'bare', amp: 'amp', compare: 'amp vs bare' };
    const sections = [table(header, this.rows)];
    for (const { metric, base, other, digits } of this.ampOnly) {
      sections.push(
        table({ metric: 'amp only', bare: base.label, amp: other.label, compare: 'ratio' }, [
          {
            metric,
            bare: fixed(base.value, digits),
            amp: fixed(other.value, digits),
            compare: `${fixed(other.value / base.value, 2)}x`,
          },
        ]),
      );
    }
    const failed = this.targets.filter((target) => !target.pass).length;
    const verdicts = this.targets.map((t) => `${t.label} ${t.pass ? 'PASS' : 'FAIL'} (${t.detail})`);
    return [
      ...sections.flatMap((section, index) => (index === 0 ? section : ['', ...section])),
      '',
      `targets (amp): ${verdicts.join('; ')}`,
      `${this.targets.length - failed}/${this.targets.length} targets met`,
    ].join('\n');
  }
}
