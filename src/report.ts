// Plain-text rendering of broker statistics for the CLI.
import { BrokerStats } from './broker';

const us = (v: number) => (v >= 1000 ? `${(v / 1000).toFixed(1)} ms` : `${v.toFixed(0)} µs`);

export function formatStats(st: BrokerStats): string {
  const lines = [`uptime ${(st.uptimeMs / 1000).toFixed(0)} s`];
  lines.push('pool              requests  errors  timeouts  faults  resets fast/full  p50        p99        busy/forks  queued');
  for (const [name, p] of Object.entries(st.pools)) {
    lines.push(
      `${name.padEnd(18)}${String(p.requests).padStart(8)}${String(p.errors).padStart(8)}${String(p.timeouts).padStart(10)}` +
        `${String(p.faults).padStart(8)}${`${p.resets.fast}/${p.resets.full}`.padStart(18)}  ${us(p.latency.p50Us).padEnd(11)}` +
        `${us(p.latency.p99Us).padEnd(11)}${`${p.busy}/${p.forks}`.padStart(10)}${String(p.queued).padStart(8)}`,
    );
  }
  lines.push('backend           calls  faults  restores  restarts  timeouts  instances  available');
  for (const [name, b] of Object.entries(st.backends)) {
    lines.push(
      `${name.padEnd(18)}${String(b.calls).padStart(5)}${String(b.faults).padStart(8)}${String(b.restores).padStart(10)}` +
        `${String(b.restarts).padStart(10)}${String(b.timeouts).padStart(10)}${String(b.instances.length).padStart(11)}  ${b.available ? 'yes' : 'restarting'}`,
    );
  }
  return lines.join('\n');
}
