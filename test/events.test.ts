// Call events cost a VM exit per call on the in-guest gate, so the VMM posts them only while a
// 'call' listener exists. Every way to add or remove a listener must move that native flag:
// observed here as the forks' gate exits (one per call while the flag is on, none when off).
// Runs where the host is kvm_pvm (the in-guest gate exists only there), in a child process whose
// environment selects FARCALL_ENTRY=pvm-native, as test/pvm.test.ts does.
import { execFile } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

import { guest, kvmAvailable, ms, root } from './helpers';

const isPvm = fs.existsSync('/sys/module/kvm_pvm');
const describePvm: jest.Describe = (kvmAvailable() && isPvm ? describe : describe.skip) as jest.Describe;

// Each scenario: a trusted counter backend behind a one-fork pool (or a broker). Steps either
// touch the listeners or run calls; a 'calls' step records the gate exits those calls took.
const CHILD = `
const { Backend, Broker, RequestPool } = require(${JSON.stringify(path.join(root, 'dist', 'src'))});
const backendProgram = ${JSON.stringify(guest('counter_backend'))};
const callerProgram = ${JSON.stringify(guest('caller'))};
(async () => {
  const out = {};
  for (const [name, steps] of Object.entries(JSON.parse(process.env.EVENT_SCENARIOS))) {
    let backend, pool, broker;
    if (steps[0] === 'broker') {
      broker = await Broker.start({
        backends: { counter: { program: backendProgram, memoryMiB: 16, trusted: true, durability: 'instance' } },
        pools: { p: { program: callerProgram, size: 1, memoryMiB: 16, backends: ['counter'] } },
      });
      backend = broker.backend('counter');
      pool = broker.pool('p');
    } else {
      backend = await Backend.load(backendProgram, { memoryMiB: 16, trusted: true, durability: 'instance' });
      pool = await RequestPool.create(callerProgram, { size: 1, memoryMiB: 16, backends: { counter: backend } });
    }
    const heard = [];
    const mine = (e) => heard.push(e.entry);
    if (broker) broker.on('call', (e) => heard.push('broker:' + e.entry));
    const exits = () => pool.forkStats()[0].exits.gate ?? 0;
    // Until no event has arrived for 100 ms (a loaded machine delivers them late), at most 3 s.
    const quiet = async () => {
      for (let n = -1, t = 0; n !== heard.length && t < 30; t++) {
        n = heard.length;
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    const rec = [];
    for (const s of steps.slice(1)) {
      if (s === 'calls') {
        const before = exits();
        for (let i = 0; i < 3; i++) await pool.run('add:1');
        rec.push(exits() - before);
        await quiet(); // events reach the loop after their call
      } else if (s === 'on' || s === 'addListener' || s === 'once') backend[s]('call', mine);
      else if (s === 'off' || s === 'removeListener') backend[s]('call', mine);
      else if (s === 'removeAllCall') backend.removeAllListeners('call');
      else if (s === 'removeAll') backend.removeAllListeners();
      else if (s === 'traceOn') broker.traceCalls(true);
      else if (s === 'traceOff') broker.traceCalls(false);
      else if (s === 'crash3') {
        for (let i = 0; i < 3; i++) await pool.run('crash').catch(() => {});
        // The fault events reach the policy through the event loop: give them up to 3 s.
        const restarting = () => backend.isRestarting || backend.stats().restarts > 0;
        for (let t = 0; t < 30 && !restarting(); t++) await new Promise((r) => setTimeout(r, 100));
        rec.push(restarting() ? 'restarting' : 'not restarting');
      }
    }
    await quiet();
    out[name] = { exits: rec, heard: heard.length };
    if (broker) await broker.close();
    else { await pool.close(); backend.close(); }
  }
  process.stdout.write(JSON.stringify(out));
})().catch((e) => { process.stdout.write(JSON.stringify({ error: e.message })); });
`;

function scenarios(list: Record<string, string[]>): Promise<Record<string, { exits: Array<number | string>; heard: number }>> {
  const env = { ...process.env, FARCALL_ENTRY: 'pvm-native', EVENT_SCENARIOS: JSON.stringify(list) };
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['-e', CHILD], { env, timeout: ms(120000) }, (e, stdout, stderr) => {
      if (e) reject(new Error(`${e.message}\n${stderr}`));
      else resolve(JSON.parse(stdout));
    });
  });
}

describePvm('call events: the native flag follows the listeners on every path', () => {
  test('off, removeListener, removeAllListeners (one event or all) and a spent once() each clear it', async () => {
    const r = await scenarios({
      none: ['plain', 'calls'],
      onOff: ['plain', 'on', 'calls', 'off', 'calls'],
      addRemove: ['plain', 'addListener', 'calls', 'removeListener', 'calls'],
      addOff: ['plain', 'addListener', 'calls', 'off', 'calls'],
      removeAllCall: ['plain', 'on', 'calls', 'removeAllCall', 'calls'],
      removeAll: ['plain', 'addListener', 'calls', 'removeAll', 'calls'],
      once: ['plain', 'once', 'calls', 'calls'],
    });
    expect(r.none).toEqual({ exits: [0], heard: 0 });
    // While a listener is there: one exit per call (3 calls); after its removal: none.
    for (const k of ['onOff', 'addRemove', 'addOff', 'removeAllCall', 'removeAll']) expect([k, r[k]]).toEqual([k, { exits: [3, 0], heard: 3 }]);
    // once(): the first call's event removes it, so the next calls are exit-free.
    expect(r.once.heard).toBe(1);
    expect(r.once.exits[1]).toBe(0);
  });

  test("traceCalls(false) removes only the broker's listener and clears the flag; a user's own listener keeps it", async () => {
    const r = await scenarios({
      trace: ['broker', 'traceOn', 'calls', 'traceOff', 'calls', 'traceOn', 'traceOn', 'calls', 'traceOff', 'calls'],
      userStays: ['broker', 'on', 'traceOn', 'calls', 'traceOff', 'calls', 'off', 'calls'],
    });
    expect(r.trace).toEqual({ exits: [3, 0, 3, 0], heard: 6 }); // tracing twice does not double the events
    expect(r.userStays.exits).toEqual([3, 3, 0]);
  });

  test('removeAllListeners() keeps the restart policy working (its fault listener is not the caller\'s to remove)', async () => {
    const r = await scenarios({ restart: ['plain', 'on', 'removeAll', 'crash3'] });
    expect(r.restart.exits).toEqual(['restarting']);
  });
});
