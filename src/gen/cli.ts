// `farcall gen`: the code generator's command (added to the farcall CLI by addGenCommand()).
import { Command } from 'commander';

import { ALL_LANGS, generate, GenError, parseLangs } from './index';

export function addGenCommand(program: Command): Command {
  return program
    .command('gen')
    .description('generate host stubs (ts), C++/C client headers (cpp, c) and server skeletons (server) from FlatBuffers rpc_service schemas')
    .argument('<schemas...>', 'schema files (.fbs)')
    .requiredOption('-o, --out <dir>', 'output folder (ts/, cpp/, c/ are made under it)')
    .option('-l, --lang <langs>', `comma-separated subset of ${ALL_LANGS.join(',')}`, ALL_LANGS.join(','))
    .option('-I, --include <dirs...>', 'extra include folders for flatc')
    .option('-q, --quiet', 'do not list the files')
    .action((schemas: string[], o: { out: string; lang: string; include?: string[]; quiet?: boolean }) => {
      try {
        const r = generate(schemas, { out: o.out, langs: parseLangs(o.lang), includes: o.include });
        if (!o.quiet) for (const f of r.files) process.stdout.write(`${f}\n`);
      } catch (e) {
        if (!(e instanceof GenError)) throw e;
        process.stderr.write(`farcall gen: ${e.message}\n`);
        process.exitCode = 1;
      }
    });
}
