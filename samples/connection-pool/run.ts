// connection-pool sample, one command: node dist/samples/connection-pool/run.js
// Starts redis-server on a free loopback port, a broker whose "redis" backend keeps one
// connection per instance, runs commands from request forks, shows that N instances use N
// connections and that an address outside network.allow is refused, and stops everything.
import { Broker } from '../../src';
import { configFor, RespClient, startPoolDemo } from './index';

async function main(): Promise<void> {
  const demo = await startPoolDemo();
  const { broker, redis } = demo;
  const instances = broker.stats().backends.redis.instances.length;
  console.log(`redis-server on ${redis.addr}; backend "redis" with ${instances} instances`);
  try {
    for (const cmd of ['SET greeting "hello from a fork"', 'GET greeting', 'INCR visits', 'INCR visits', 'RPUSH list a b c\nLRANGE list 0 -1']) {
      console.log(`  ${cmd.replace(/\n/g, ' ; ').padEnd(38)} -> ${(await demo.request(cmd)).replace(/\n/g, ' | ')}`);
    }
    // Enough concurrent requests, each holding its instance for 100 ms, to use every instance.
    const ids = await Promise.all(
      Array.from({ length: instances }, (_, i) => demo.request(`BLPOP farcall:nothing:${i} 0.1\nCLIENT ID`)),
    );
    console.log(`  ${instances} concurrent requests ran on redis clients: ${ids.map((r) => r.split('\n')[1]).join(', ')}`);
    const check = await RespClient.connect(redis.port);
    const clients = () => check.command('INFO').then((v) => String(v));
    const field = (info: string, k: string) => Number(new RegExp(`${k}:(\\d+)`).exec(info)?.[1]);
    const info0 = await clients();
    console.log(`  redis reports ${field(info0, 'connected_clients')} connected clients (${instances} instances + this check)`);
    for (let i = 0; i < 100; i++) await demo.request('INCR visits');
    const info1 = await clients();
    console.log(
      `  after 100 more requests (each a fresh fork): visits = ${await demo.request('GET visits')}, ` +
        `new connections to redis: ${field(info1, 'total_connections_received') - field(info0, 'total_connections_received')}`,
    );
    check.close();

    // A backend that may not reach this address: the connect is refused with EACCES.
    const denied = await Broker.start(configFor(redis.addr, { instances: 1, poolSize: 1, allow: ['127.0.0.1:1'] }));
    try {
      console.log(`  backend not allowed to reach ${redis.addr}: ${await denied.request('redis', 'PING')}`);
      const inst = denied.stats().backends.redis.instances[0];
      console.log(`  its stats: netRefused=${inst.netRefused} lastRefused=${inst.lastRefused}`);
    } finally {
      await denied.close();
    }
    const p = broker.stats().pools.redis;
    console.log(`pool redis: ${p.requests} requests, ${p.errors} errors, p50 ${p.latency.p50Us.toFixed(0)} us, p99 ${p.latency.p99Us.toFixed(0)} us`);
  } finally {
    await demo.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
