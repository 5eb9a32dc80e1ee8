// Latency bookkeeping shared by pools and backends: a bounded window of samples.

export interface LatencySummary {
  count: number;
  p50Us: number;
  p99Us: number;
  meanUs: number;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

export class LatencyWindow {
  private samples: number[] = [];
  private next = 0;
  private total = 0;
  constructor(private readonly size = 4096) {}

  add(us: number): void {
    if (this.samples.length < this.size) this.samples.push(us);
    else this.samples[this.next] = us;
    this.next = (this.next + 1) % this.size;
    this.total++;
  }

  summary(): LatencySummary {
    const s = [...this.samples].sort((a, b) => a - b);
    const mean = s.length ? s.reduce((a, b) => a + b, 0) / s.length : 0;
    return { count: this.total, p50Us: percentile(s, 50), p99Us: percentile(s, 99), meanUs: mean };
  }
}
