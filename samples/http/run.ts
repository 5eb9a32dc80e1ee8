// http sample, one command: node dist/samples/http/run.js [port]
// Serves the kv store over HTTP on 127.0.0.1 (every HTTP request in a fresh fork) until Ctrl-C.
import { startHttpSample } from './server';

async function main(): Promise<void> {
  const port = Number(process.argv[2] ?? process.env.PORT ?? 8080);
  const s = await startHttpSample({ port });
  console.log(`kv over HTTP on ${s.url} (each request runs in a fresh fork); try:
  curl -X PUT --data 'hello' ${s.url}/kv/greeting
  curl ${s.url}/kv/greeting
  curl -X POST ${s.url}/kv/visits/incr
  curl ${s.url}/seen
  curl ${s.url}/stats
Ctrl-C stops it.`);
  const stop = async () => {
    await s.close();
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
