// `farcall snapshot`: a pool's master or a backend, from a program or from a broker config.
import { Backend } from './backend';
import { Broker } from './broker';
import { BrokerConfig, loadConfigFile } from './config';
import { InvalidArgumentError } from './errors';
import { RequestPool } from './pool';
import { SnapshotInfo } from './snapshot';

export interface SnapshotCliOptions {
  program?: string;
  args: string[];
  output: string;
  config?: string;
  pool?: string;
  /** true: the program is a backend; a string: the config's backend of that name. */
  backend?: boolean | string;
  memoryMiB?: number;
  instances: number;
  env: string[];
}

export async function makeSnapshot(o: SnapshotCliOptions): Promise<SnapshotInfo & { what: string }> {
  if (o.config) {
    if (o.program) throw new InvalidArgumentError('InvalidArgument', 'give a program or --config, not both');
    const cfg = loadConfigFile(o.config);
    const backendName = typeof o.backend === 'string' ? o.backend : undefined;
    if (!o.pool === !backendName) throw new InvalidArgumentError('InvalidArgument', 'with --config, name one --pool or one --backend');
    if (o.pool && !cfg.pools?.[o.pool]) throw new InvalidArgumentError('InvalidArgument', `config ${o.config} has no pool ${o.pool}`);
    if (backendName && !cfg.backends?.[backendName])
      throw new InvalidArgumentError('InvalidArgument', `config ${o.config} has no backend ${backendName}`);
    // Every backend, in config order, as `farcall serve` loads them: so they sit where they will
    // sit when the pool is served from its snapshot. Only the pool wanted.
    const only: BrokerConfig = { backends: cfg.backends, pools: o.pool ? { [o.pool]: cfg.pools![o.pool] } : {} };
    const broker = await Broker.start(only);
    try {
      const r = o.pool ? await broker.pool(o.pool).snapshot(o.output) : await broker.backend(backendName!).snapshot(o.output);
      return { ...r, what: o.pool ? `pool ${o.pool}` : `backend ${backendName}` };
    } finally {
      await broker.close();
    }
  }
  if (!o.program) throw new InvalidArgumentError('InvalidArgument', 'give a program, or --config with --pool or --backend');
  if (o.backend) {
    const b = await Backend.load(o.program, { args: o.args, env: o.env, memoryMiB: o.memoryMiB, instances: o.instances });
    try {
      return { ...(await b.snapshot(o.output)), what: 'backend' };
    } finally {
      b.close();
    }
  }
  const pool = await RequestPool.create(o.program, { size: 1, args: o.args, env: o.env, memoryMiB: o.memoryMiB });
  try {
    return { ...(await pool.snapshot(o.output)), what: 'pool master' };
  } finally {
    await pool.close();
  }
}
