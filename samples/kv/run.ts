// c-stubs sample, one command: node dist/samples/kv/run.js
//
// One schema (kv.fbs), three clients generated from it, one backend: a C++ request program
// (generated/cpp), a C request program for musl (generated/c) and TypeScript on the host
// (generated/ts) all talk to the C++ backend's generated server skeleton and see one store.
import * as path from 'path';

import { Backend, RequestPool } from '../../src';
import { GetRequestT, PutRequestT } from '../../build/generated/kv/ts/kv_generated';
import { KeyValueClient } from '../../build/generated/kv/ts/kv_farcall';

function repo(...p: string[]): string {
  // dist/samples/kv/run.js and samples/kv/run.ts both sit three levels below the repository.
  const up = __dirname.includes(`${path.sep}dist${path.sep}`) ? '../../..' : '../..';
  return path.resolve(__dirname, up, ...p);
}

async function main(): Promise<void> {
  const backend = await Backend.load(repo('build', 'guests', 'kv_backend'), { instances: 1 });
  const ts = await KeyValueClient.connect(backend); // checks the schema identity
  const cxx = await RequestPool.create(repo('build', 'guests', 'kv_client'), { size: 1, backends: { kv: backend } });
  const c = await RequestPool.create(repo('build', 'guests', 'kv_client_c'), { size: 1, backends: { kv: backend } });
  const show = (who: string, cmd: string, out: string) => console.log(`${who.padEnd(4)} ${cmd.padEnd(24)} -> ${out}`);
  try {
    for (const [who, pool, cmd] of [
      ['C++', cxx, 'put language c++'],
      ['C', c, 'get language'],
      ['C', c, 'put greeting hello-from-c'],
      ['C++', cxx, 'get greeting'],
    ] as Array<[string, RequestPool, string]>) {
      show(who, cmd, (await pool.run(cmd)).toString().trim());
    }
    await ts.put(new PutRequestT('host', [...Buffer.from('typescript')]));
    show('TS', 'put host typescript', 'ok');
    show('C', 'scan -', (await c.run('scan -')).toString().trim());
    const got = await ts.get(new GetRequestT('greeting'));
    show('TS', 'get greeting', Buffer.from(got.value).toString());
  } finally {
    await cxx.close();
    await c.close();
    backend.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
