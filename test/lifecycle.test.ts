// Backend lifecycle under failure (issue 17): a failed manual restart is retried like an
// automatic one and reported, and host calls during any restart reject with BackendUnavailableError.
import * as net from 'net';

import { Backend, BackendRestartEvent, BackendUnavailableError } from '../src';
import { describeKvm, guest } from './helpers';

const listen = (port = 0) =>
  new Promise<net.Server>((resolve, reject) => {
    const s = net.createServer((c) => c.destroy());
    s.once('error', reject);
    s.listen(port, '127.0.0.1', () => resolve(s));
  });
const close = (s: net.Server) => new Promise<void>((r) => s.close(() => r()));
const until = async (cond: () => boolean, ms = 5000) => {
  for (const t = Date.now(); !cond() && Date.now() - t < ms; ) await new Promise((r) => setTimeout(r, 10));
  return cond();
};

describeKvm('backend lifecycle', () => {
  test('a failed manual restart leaves the backend unavailable, is reported, and is retried until it succeeds', async () => {
    let server = await listen();
    const port = (server.address() as net.AddressInfo).port;
    const backend = await Backend.load(guest('gated_backend'), {
      args: [String(port)], network: { allow: [`127.0.0.1:${port}`] }, restart: { backoffMs: 100 },
    });
    const events: BackendRestartEvent[] = [];
    backend.on('restart', (e) => events.push(e));
    try {
      expect((await backend.call('ping')).toString()).toBe('pong');
      await close(server); // the service the backend's initialization needs is gone
      await expect(backend.restart()).rejects.toThrow(/before calling farcall_serve/);
      expect(events[0]).toMatchObject({ attempt: 1, ok: false });
      expect(backend.isRestarting).toBe(true);
      expect(backend.stats().available).toBe(false);
      await expect(backend.call('ping')).rejects.toBeInstanceOf(BackendUnavailableError);
      // Retried with back-off: a second failure is reported too, then the service returns.
      expect(await until(() => events.length >= 2)).toBe(true);
      expect(events[1]).toMatchObject({ attempt: 2, ok: false });
      server = await listen(port);
      expect(await until(() => events.some((e) => e.ok))).toBe(true);
      expect(events[events.length - 1].ok).toBe(true);
      expect(backend.isRestarting).toBe(false);
      expect(backend.stats()).toMatchObject({ available: true, restarts: 1 });
      expect((await backend.call('ping')).toString()).toBe('pong');
    } finally {
      backend.close();
      await close(server);
    }
  });

  test('host calls queued when a restart begins reject with BackendUnavailableError, never BackendFault', async () => {
    const backend = await Backend.load(guest('counter_backend'), { memoryMiB: 16 });
    try {
      const before = Array.from({ length: 20 }, () => backend.call('host_echo', 'x').then(() => 'ok', (e) => e.constructor.name));
      const restart = backend.restart();
      expect(backend.isRestarting).toBe(true);
      const during = Array.from({ length: 5 }, () => backend.call('host_echo', 'y').then(() => 'ok', (e) => e.constructor.name));
      await restart;
      const outcomes = [...(await Promise.all(before)), ...(await Promise.all(during))];
      expect(outcomes.filter((o) => o !== 'ok' && o !== 'BackendUnavailableError')).toEqual([]);
      expect(outcomes.slice(20)).toEqual(Array(5).fill('BackendUnavailableError'));
      expect(outcomes).toContain('BackendUnavailableError');
      expect(backend.isRestarting).toBe(false);
      expect((await backend.call('host_echo', 'z')).toString()).toBe('echo:z');
    } finally {
      backend.close();
    }
  });
});

describeKvm('sockets and undone calls', () => {
  // Durability 'call' undoes a failed call's memory and fd table; a socket it opened must go
  // with them, or every crashing call leaks one host socket until the instance has none left
  // (64) and no later call can connect.
  test('a call that crashes with a socket open does not leave it open in the instance', async () => {
    const server = await listen();
    const port = (server.address() as net.AddressInfo).port;
    const backend = await Backend.load(guest('gated_backend'), {
      args: [String(port)], network: { allow: [`127.0.0.1:${port}`] }, restart: { maxFaults: 1000 },
    });
    try {
      for (let i = 0; i < 70; i++) await expect(backend.call('connect_crash')).rejects.toThrow(/fault/i);
      const r = await backend.callRaw('connect_ok', Buffer.alloc(0));
      expect(r.result).toBe(0);
      expect(backend.stats().restores).toBe(70);
    } finally {
      backend.close();
      await close(server);
    }
  });
});

describeKvm('closing with work in flight', () => {
  // A backend closed while host calls are queued on its worker: the worker is deleted while the
  // completions of its last jobs still wait for the JS thread. They must run (or be dropped)
  // without touching it; node once died with SIGSEGV here. A child process, so that a crash is
  // an exit status, not the end of the test run.
  test('closing a backend with host calls, a restart and a snapshot in flight never crashes node', async () => {
    const child = `
      const { Backend } = require(${JSON.stringify(require('path').join(__dirname, '..', 'dist', 'src'))});
      const dir = require('fs').mkdtempSync(require('path').join(require('os').tmpdir(), 'farcall-close-'));
      (async () => {
        let settled = 0;
        for (let round = 0; round < 15; round++) {
          const b = await Backend.load(${JSON.stringify(guest('counter_backend'))}, { memoryMiB: 16 });
          const calls = Array.from({ length: 6 }, () => b.call('host_echo', 'x').then(() => 1, () => 1));
          calls.push(b.restart().then(() => 1, () => 1), b.snapshot(require('path').join(dir, 'b' + round + '.snap')).then(() => 1, () => 1));
          if (round % 2) await new Promise((r) => setImmediate(r));
          b.close();
          settled += (await Promise.all(calls)).length;
        }
        await new Promise((r) => setTimeout(r, 200));
        require('fs').rmSync(dir, { recursive: true, force: true });
        process.stdout.write(String(settled));
      })().catch((e) => { process.stdout.write('error: ' + e.message); process.exitCode = 3; });`;
    const { spawnSync } = require('child_process');
    const r = spawnSync(process.execPath, ['-e', child], { encoding: 'utf8', timeout: 120000 });
    expect({ status: r.status, signal: r.signal, out: r.stdout }).toEqual({ status: 0, signal: null, out: '120' });
  });

  // Node tearing down its environment finalizes the thread-safe functions first, then the handles
  // left open, whose destructors released those functions again: SIGABRT at every exit with a
  // backend not closed (the backend's listener, and its worker with a host call in flight).
  test('exiting with backends left open, one with a call in flight, ends node normally', () => {
    const child = `
      const { Backend, RequestPool } = require(${JSON.stringify(require('path').join(__dirname, '..', 'dist', 'src'))});
      (async () => {
        const idle = await Backend.load(${JSON.stringify(guest('counter_backend'))}, { memoryMiB: 16 });
        const busy = await Backend.load(${JSON.stringify(guest('counter_backend'))}, { memoryMiB: 16 });
        const pool = await RequestPool.create(${JSON.stringify(guest('caller'))}, { size: 1, backends: { counter: busy } });
        process.stdout.write(String(await pool.run('add:1')));
        pool.run('nap:200').catch(() => {});
        busy.call('host_echo', 'x').catch(() => {});
        void idle;
      })().catch((e) => { process.stdout.write('error: ' + e.message); process.exitCode = 3; });`;
    const { spawnSync } = require('child_process');
    for (let i = 0; i < 3; i++) {
      const r = spawnSync(process.execPath, ['-e', child], { encoding: 'utf8', timeout: 60000 });
      expect({ status: r.status, signal: r.signal, out: r.stdout }).toEqual({ status: 0, signal: null, out: '1' });
    }
  });
});
