// Uses the installed farcall with its types: a backend, a pool whose requests call it, and
// the host stub generated from counter.fbs (which takes flatbuffers from farcall/flatbuffers).
import { Backend, FarcallError, RequestPool } from 'farcall';

import { AddRequestT } from './build/gen/ts/counter_generated';
import { CounterClient } from './build/gen/ts/counter_farcall';

async function main(): Promise<void> {
  const counter = await Backend.load('build/guests/counter_backend');
  const pool = await RequestPool.create('build/guests/counter_request', { size: 1, backends: { counter } });
  try {
    // @ts-expect-error: the package's types refuse a misspelt option
    await RequestPool.create('build/guests/counter_request', { sise: 4 }).catch((e: FarcallError) => console.log(`refused: ${e.code}`));
    console.log(`pool: ${(await pool.run('5')).toString()}`);
    const client = await CounterClient.connect(counter);
    console.log(`host stub: total=${(await client.add(new AddRequestT(2))).total}`);
  } finally {
    await pool.close();
    counter.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
