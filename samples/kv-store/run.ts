// kv-store sample, one command: node dist/samples/kv-store/run.js
// Starts the broker from farcall.json, runs a few requests (each in a fresh fork) that keep
// their data in the backend, prints what came back and the broker's statistics, and closes.
import { startKvDemo } from './index';

async function main(): Promise<void> {
  const demo = await startKvDemo();
  try {
    const steps = [
      'PUT greeting hello from a request VM',
      'GET greeting',
      'INCR visits',
      'INCR visits',
      'INCR visits 40',
      'SEEN', // 1 every time: each request starts in a fresh fork
      'SEEN',
      'PUT temp x',
      'DEL temp',
      'GET temp',
      'COUNT',
      'INCR greeting',
    ];
    console.log('each line is one request, run in its own fork; state lives in the kv backend:');
    for (const s of steps) console.log(`  ${s.padEnd(40)} -> ${await demo.request(s)}`);
    // Concurrent requests on the pool's forks, all incrementing one counter in the backend.
    const n = 200;
    const t0 = process.hrtime.bigint();
    await Promise.all(Array.from({ length: n }, () => demo.request('INCR hits')));
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    console.log(`  ${n} concurrent 'INCR hits' in ${ms.toFixed(1)} ms -> ${await demo.request('GET hits')}`);
    console.log(`  host call exec('GET visits')             -> ${await demo.hostExec('GET visits')}`);
    console.log('backend counters:', await demo.info());
    const st = demo.broker.stats();
    const p = st.pools.kv;
    console.log(
      `pool kv: ${p.requests} requests, ${p.errors} errors, resets fast/full ${p.resets.fast}/${p.resets.full}, ` +
        `latency p50 ${p.latency.p50Us.toFixed(0)} us p99 ${p.latency.p99Us.toFixed(0)} us`,
    );
    const b = st.backends.kv;
    console.log(`backend kv: ${b.calls} gated calls, ${b.faults} faults, ${b.restarts} restarts`);
  } finally {
    await demo.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
