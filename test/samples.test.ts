// The samples, end to end on real KVM: kv-store (per-request guests, persistent backend),
// connection-pool (N backend instances, N Redis connections, network allowlist), and http
// (every HTTP request in a fresh fork, under autocannon load, plus a short soak).
import { spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

import autocannon from 'autocannon';

import { Broker, RequestFailedError, validateConfig } from '../src';
import { configPath as kvConfigPath, startKvDemo } from '../samples/kv-store';
import { configFor, RespClient, RedisServer, redisAvailable, startRedis } from '../samples/connection-pool';
import { startHttpSample } from '../samples/http/server';
import { formatReport, soak } from '../samples/http/soak';
import { defaultEntry, describeKvm, kvmThreadCount, ms, openFds, root, timeScale } from './helpers';

const dist = (p: string) => path.join(root, 'dist', 'samples', p);

/** Runs `node file args` and resolves with its exit code and output (bounded in time). */
function runNode(file: string, args: string[] = [], timeoutMs = ms(60000)): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [file, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(t);
      resolve({ code, out });
    });
  });
}

describeKvm('sample kv-store', () => {
  let demo: Awaited<ReturnType<typeof startKvDemo>>;
  beforeAll(async () => {
    demo = await startKvDemo();
  });
  afterAll(async () => {
    await demo?.close();
  });

  test('state written by one fork is read by the next; the forks themselves keep nothing', async () => {
    expect(await demo.request('GET greeting')).toBe('NIL');
    expect(await demo.request('PUT greeting hello from a fork')).toBe('OK');
    expect(await demo.request('GET greeting')).toBe('VALUE hello from a fork');
    expect(await demo.request('INCR n')).toBe('INT 1');
    expect(await demo.request('INCR n 41')).toBe('INT 42');
    expect(await demo.request('INCR n -2')).toBe('INT 40');
    // Every request starts from the master's state: the per-fork counter is 1 every time.
    const seen = await Promise.all(Array.from({ length: 20 }, () => demo.request('SEEN')));
    expect(new Set(seen)).toEqual(new Set(['INT 1']));
    expect(await demo.request('DEL greeting')).toBe('DELETED');
    expect(await demo.request('DEL greeting')).toBe('NIL');
    expect(await demo.request('GET greeting')).toBe('NIL');
    const st = demo.broker.stats();
    expect(st.pools.kv.resets.full).toBe(0);
    expect(st.pools.kv.errors).toBe(0);
  });

  test('concurrent increments from many forks: no lost update (one instance serializes them)', async () => {
    await Promise.all(Array.from({ length: 300 }, () => demo.request('INCR hits')));
    expect(await demo.request('GET hits')).toBe('VALUE 300');
  });

  test('binary and large values pass through unchanged (zero-copy into the reply)', async () => {
    const bin = Buffer.from([0, 1, 2, 10, 13, 32, 255, 0, 65]);
    expect((await demo.broker.request('kv', Buffer.concat([Buffer.from('PUT bin '), bin]))).toString()).toBe('OK');
    const got = await demo.broker.request('kv', 'GET bin');
    expect(got.subarray(6).equals(bin)).toBe(true);
    const big = Buffer.alloc(512 * 1024, 'x');
    big.write('start', 0);
    big.write('end', big.length - 3);
    expect((await demo.broker.request('kv', Buffer.concat([Buffer.from('PUT big '), big]))).toString()).toBe('OK');
    const back = await demo.broker.request('kv', 'GET big');
    expect(back.length).toBe(6 + big.length);
    expect(back.subarray(6).equals(big)).toBe(true);
  });

  test('bad requests answer ERR, never crash the fork or the backend', async () => {
    expect(await demo.request('FROB x')).toMatch(/^ERR unknown command/);
    expect(await demo.request('GET')).toBe('ERR missing key');
    expect(await demo.request(`GET ${'k'.repeat(251)}`)).toBe('ERR key longer than 250 bytes');
    await demo.request('PUT word hello');
    expect(await demo.request('INCR word')).toBe('ERR value is not an integer');
    expect(await demo.request('INCR n notanumber')).toBe('ERR increment is not an integer');
    await demo.request('PUT max 9223372036854775807');
    expect(await demo.request('INCR max')).toBe('ERR increment would overflow');
    const st = demo.broker.stats();
    expect(st.backends.kv.faults).toBe(0);
    expect(st.pools.kv.faults).toBe(0);
  });

  test('the host reaches the same table through host-convention entries', async () => {
    await demo.request('PUT shared from-a-fork');
    expect(await demo.hostExec('GET shared')).toBe('VALUE from-a-fork');
    expect(await demo.hostExec('PUT shared from-the-host')).toBe('OK');
    expect(await demo.request('GET shared')).toBe('VALUE from-the-host');
    expect(await demo.hostExec('INCR hostn 5')).toBe('INT 5');
    expect(await demo.request('COUNT')).toBe(await demo.hostExec('COUNT'));
    const info = await demo.info();
    expect(info.keys).toBeGreaterThan(3);
    expect(info.rejected).toBe(0);
  });

  test('the config is a plain farcall.json that Broker.start reads by path', async () => {
    const b = await Broker.start(kvConfigPath());
    try {
      expect((await b.request('kv', 'SEEN')).toString()).toBe('INT 1');
      // A second broker has its own backend: it does not see the first one's keys.
      expect((await b.request('kv', 'GET hits')).toString()).toBe('NIL');
    } finally {
      await b.close();
    }
  });

  test('a backend marked trusted in the config is loaded trusted; a non-boolean is a ConfigError naming the field', async () => {
    const cfg = JSON.parse(fs.readFileSync(kvConfigPath(), 'utf8'));
    const base = path.dirname(kvConfigPath());
    const name = Object.keys(cfg.backends)[0];
    cfg.backends[name].trusted = true;
    expect(validateConfig(cfg, base).backends![name].trusted).toBe(true);
    const b = await Broker.start(validateConfig(cfg, base));
    try {
      expect((await b.request('kv', 'SEEN')).toString()).toBe('INT 1');
      // Under pvm-native the kv pool calls its one trusted backend inside its own VM.
      expect(b.pool('kv').stats().gate).toBe(defaultEntry() === 'pvm-native' ? 'in-guest' : 'exit');
    } finally {
      await b.close();
    }
    cfg.backends[name].trusted = 'yes';
    expect(() => validateConfig(cfg, base)).toThrow(new RegExp(`config backends\\.${name}\\.trusted: must be true or false`));
  });

  test('one command: node dist/samples/kv-store/run.js', async () => {
    const r = await runNode(dist('kv-store/run.js'));
    expect(r.out).toContain('GET greeting                             -> VALUE hello from a request VM');
    expect(r.out).toMatch(/200 concurrent 'INCR hits' .* -> VALUE 200/);
    expect(r.out).toMatch(/pool kv: \d+ requests, 0 errors/);
    expect(r.code).toBe(0);
  });
});

// redis-server is installed by scripts/setup.js; in CI (CI=true) its absence fails the suite.
const describeRedis = redisAvailable() || process.env.CI === 'true' ? describeKvm : (describe.skip as jest.Describe);

describeRedis('sample connection-pool (real redis-server on loopback)', () => {
  let redis: RedisServer;
  let check: RespClient;
  beforeAll(async () => {
    redis = await startRedis();
    check = await RespClient.connect(redis.port);
  });
  afterAll(async () => {
    check?.close();
    await redis?.stop();
  });

  const clientCount = async () => String(await check.command('CLIENT', 'LIST')).trim().split('\n').length;
  const infoField = async (k: string) => Number(new RegExp(`${k}:(\\d+)`).exec(String(await check.command('INFO')))![1]);

  test('N instances hold N distinct connections, reused by every later request', async () => {
    const N = 3;
    const broker = await Broker.start(configFor(redis.addr, { instances: N, poolSize: N }));
    try {
      const before = await clientCount();
      // N requests at once, each holding its instance for 200 ms: every instance is used.
      const replies = await Promise.all(
        Array.from({ length: N }, (_, i) => broker.request('redis', `BLPOP farcall:none:${i} 0.2\nCLIENT ID`).then(String)),
      );
      const ids = replies.map((r) => {
        const [blpop, id] = r.split('\n');
        expect(blpop).toBe('(nil)');
        return Number(id);
      });
      expect(new Set(ids).size).toBe(N);
      expect(await clientCount()).toBe(before + N);
      const st = broker.stats().backends.redis;
      expect(st.instances.map((x) => x.calls > 0)).toEqual(Array(N).fill(true));
      // Many more requests, each a fresh fork: no new connection is opened.
      const conns = await infoField('total_connections_received');
      await Promise.all(Array.from({ length: 60 }, (_, i) => broker.request('redis', `SET pool:k${i} v${i}`)));
      expect(await infoField('total_connections_received')).toBe(conns);
      expect(await clientCount()).toBe(before + N);
      const info = String(await broker.request('redis', 'INFO-BACKEND'));
      expect(info).toMatch(/^instance=\d connected=1 client_id=\d+ commands=\d+ connects=1$/);
    } finally {
      await broker.close();
    }
    // Closing the broker closes the instances' sockets.
    for (let i = 0; i < 50 && (await clientCount()) > 1; i++) await new Promise((r) => setTimeout(r, 20));
    expect(await clientCount()).toBe(1);
  });

  test('a value written through one fork is read through another, and by Redis itself', async () => {
    const broker = await Broker.start(configFor(redis.addr, { instances: 2, poolSize: 2 }));
    try {
      expect(String(await broker.request('redis', 'SET shared "written by a fork"'))).toBe('OK');
      expect(String(await broker.request('redis', 'GET shared'))).toBe('written by a fork');
      expect(await check.command('GET', 'shared')).toBe('written by a fork');
      await check.command('SET', 'fromhost', 'hi');
      expect(String(await broker.request('redis', 'GET fromhost\nGET missing\nINCR shared\nRPUSH l a b\nLRANGE l 0 -1'))).toBe(
        'hi\n(nil)\n(error) ERR value is not an integer or out of range\n2\na\n  b',
      );
      // Host calls use the same entry and the same pooled connections.
      const host = await broker.backend('redis').call('command', 'GET shared');
      expect(host.toString()).toBe('written by a fork');
    } finally {
      await broker.close();
    }
  });

  test('a connection the server dropped is reopened on the next call', async () => {
    const broker = await Broker.start(configFor(redis.addr, { instances: 1, poolSize: 1 }));
    try {
      const id = Number(String(await broker.request('redis', 'CLIENT ID')));
      expect(await check.command('CLIENT', 'KILL', 'ID', id)).toBe(1);
      expect(String(await broker.request('redis', 'PING'))).toBe('PONG');
      expect(String(await broker.request('redis', 'INFO-BACKEND'))).toMatch(/connected=1 .* connects=2$/);
    } finally {
      await broker.close();
    }
  });

  test('a backend not allowed to reach the server is refused with EACCES, and stats say so', async () => {
    const denied = await Broker.start(configFor(redis.addr, { instances: 1, poolSize: 1, allow: ['127.0.0.1:1'] }));
    try {
      const before = await infoField('total_connections_received');
      const r = String(await denied.request('redis', 'PING'));
      expect(r).toBe(`ERR connect (not in this backend's network.allow) ${redis.addr}: Permission denied (-13)`);
      const inst = denied.stats().backends.redis.instances[0];
      expect(inst.netRefused).toBe(1);
      expect(inst.lastRefused).toBe(redis.addr);
      // From the host: a typed error carrying -EACCES.
      const err = await denied.backend('redis').call('command', 'PING').catch((e) => e);
      expect(err).toBeInstanceOf(RequestFailedError);
      expect(err.details.result).toBe(-13);
      expect(denied.stats().backends.redis.instances[0].netRefused).toBe(2);
      expect(await infoField('total_connections_received')).toBe(before);
      expect(denied.stats().backends.redis.faults).toBe(0);
    } finally {
      await denied.close();
    }
    // A backend with no network config at all cannot even make a socket (unsupported: ENOSYS).
    const cfg = configFor(redis.addr, { instances: 1, poolSize: 1 });
    delete cfg.backends!.redis.network;
    const none = await Broker.start(cfg);
    try {
      expect(String(await none.request('redis', 'PING'))).toBe(
        `ERR socket (this backend has no network.allow) for ${redis.addr}: Function not implemented (-38)`,
      );
    } finally {
      await none.close();
    }
  });

  test('one command: node dist/samples/connection-pool/run.js (starts and stops its own redis-server)', async () => {
    const r = await runNode(dist('connection-pool/run.js'));
    expect(r.out).toContain('GET greeting                           -> hello from a fork');
    expect(r.out).toMatch(/redis reports 5 connected clients/);
    expect(r.out).toContain('new connections to redis: 0');
    expect(r.out).toContain("Permission denied (-13)");
    expect(r.out).toMatch(/netRefused=1 lastRefused=127\.0\.0\.1:\d+/);
    expect(r.code).toBe(0);
    const port = Number(/redis-server on 127\.0\.0\.1:(\d+)/.exec(r.out)![1]);
    await expect(RespClient.connect(port)).rejects.toThrow(/ECONNREFUSED/);
  });
});

describeKvm('sample http', () => {
  test('routes: every HTTP request runs in a fresh fork against the kv backend', async () => {
    const s = await startHttpSample();
    try {
      const f = (p: string, init?: RequestInit) => fetch(s.url + p, init);
      expect((await f('/kv/greeting')).status).toBe(404);
      const put = await f('/kv/greeting', { method: 'PUT', body: 'hello over http' });
      expect(put.status).toBe(200);
      const get = await f('/kv/greeting');
      expect(get.status).toBe(200);
      expect(await get.text()).toBe('hello over http');
      expect(await (await f('/kv/n/incr', { method: 'POST' })).text()).toBe('1');
      expect(await (await f('/kv/n/incr?by=9', { method: 'POST' })).text()).toBe('10');
      expect((await f('/kv/greeting/incr', { method: 'POST' })).status).toBe(409);
      expect((await f('/kv/n/incr?by=x', { method: 'POST' })).status).toBe(400);
      expect((await f('/kv/a%20b')).status).toBe(400);
      expect(await (await f('/seen')).text()).toBe('1');
      expect((await f('/kv/greeting', { method: 'DELETE' })).status).toBe(200);
      expect((await f('/kv/greeting', { method: 'DELETE' })).status).toBe(404);
      expect((await f('/nope')).status).toBe(404);
      expect((await f('/kv/huge', { method: 'PUT', body: Buffer.alloc(2 << 20) })).status).toBe(413);
      const stats = (await (await f('/stats')).json()) as { broker: { pools: { kv: { requests: number } } }; http: { isolationViolations: number } };
      expect(stats.broker.pools.kv.requests).toBeGreaterThanOrEqual(9);
      expect(stats.http.isolationViolations).toBe(0);
    } finally {
      await s.close();
    }
  });

  test('autocannon for 3 s on loopback: 0 errors, 0 non-2xx, no lost update, isolation holds', async () => {
    const kvm0 = kvmThreadCount();
    const s = await startHttpSample();
    try {
      const res = await autocannon({
        url: s.url,
        connections: 8,
        duration: 3,
        timeout: ms(10),
        requests: [
          { method: 'POST', path: '/kv/load:hits/incr' },
          { method: 'GET', path: '/kv/load:hits' },
          { method: 'PUT', path: '/kv/load:v', body: 'x'.repeat(100) },
          { method: 'GET', path: '/kv/load:v' },
          { method: 'GET', path: '/seen' },
        ],
      });
      expect(res.errors).toBe(0);
      expect(res.timeouts).toBe(0);
      expect(res.non2xx).toBe(0);
      expect(res.requests.total).toBeGreaterThan(300 / timeScale);
      expect(s.counters.isolationViolations).toBe(0);
      // autocannon resolves without waiting for requests still in flight at the end of its
      // duration; the server finishes them. Compare only once the pool is idle.
      for (let i = 0; i < 400; i++) {
        const p = s.broker.stats().pools.kv;
        if (p.busy === 0 && p.queued === 0) break;
        await new Promise((r) => setTimeout(r, 5));
      }
      await new Promise((r) => setTimeout(r, 50));
      const hits = await (await fetch(`${s.url}/kv/load:hits`)).text();
      expect(Number(hits)).toBe(s.counters.incrOk);
      const p = s.broker.stats().pools.kv;
      expect(p.errors).toBe(0);
      expect(p.resets.full).toBe(0);
      console.log(`http sample: ${res.requests.total} requests in ${res.duration.toFixed(1)} s, p50 ${res.latency.p50} ms, p99 ${res.latency.p99} ms`);
    } finally {
      await s.close();
    }
    expect(kvmThreadCount()).toBe(kvm0);
  });

  test('soak (short): 0 errors, 0 leaked VMs or fds, flat memory', async () => {
    const fds0 = openFds();
    const r = await soak({ requests: 3000, connections: 8 });
    console.log(formatReport(r));
    expect(r.failures).toEqual([]);
    expect(r.requests).toBeGreaterThanOrEqual(3000);
    expect(r.errors + r.non2xx + r.timeouts).toBe(0);
    expect(r.leakedVms).toBe(0);
    expect(r.leakedFds).toBe(0);
    expect(r.kvmThreads.afterClose).toBe(r.kvmThreads.baseline);
    expect(r.increments.stored).toBe(r.increments.ok);
    expect(openFds()).toBeLessThanOrEqual(fds0 + 1);
  });

  test('the soak command exits 0 and prints its report', async () => {
    const r = await runNode(dist('http/soak.js'), ['500', '--json']);
    expect(r.code).toBe(0);
    const rep = JSON.parse(r.out);
    expect(rep.failures).toEqual([]);
    expect(rep.requests).toBeGreaterThanOrEqual(500);
  });
});

test('every sample program exists in the build', () => {
  for (const p of ['kvstore_backend', 'kvstore_request', 'connpool_backend', 'connpool_request']) {
    expect(spawnSync('test', ['-x', path.join(root, 'build', 'guests', p)]).status).toBe(0);
  }
});

describeKvm('sample c-stubs (samples/kv)', () => {
  test('one command: C++, C and TypeScript clients generated from one schema share one store', async () => {
    const r = await runNode(dist('kv/run.js'));
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/C\s+get language\s+-> .*c\+\+/);
    expect(r.out).toMatch(/C\+\+\s+get greeting\s+-> .*hello-from-c/);
    expect(r.out).toMatch(/C\s+scan -\s+-> greeting=hello-from-c,host=typescript,language=c\+\+ more=0/);
    expect(r.out).toMatch(/TS\s+get greeting\s+-> hello-from-c/);
  });
});
