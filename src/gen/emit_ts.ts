// TypeScript emitter: a host stub class per service over flatc's TS object API.
import * as path from 'path';

import { hex64, Model, ObjectModel } from './model';
import { banner, docComment, localServices, lowerCamel, schemaBase } from './names';
import { GENERATOR } from './version';

export function emitTs(model: Model): string {
  const base = schemaBase(model.schemaFile);
  const services = localServices(model);
  let s = banner(model, `TypeScript host stubs (services of ${base}.fbs).`, '//');
  s += `//
// Usage:
//   const backend = await Backend.load('build/guests/my_backend');
//   const client = await ${services[0]?.short ?? 'X'}Client.connect(backend);   // checks the schema identity
//   const reply = await client.method(new RequestT(...));       // object API in, object API out
import * as flatbuffers from 'farcall/flatbuffers';

import { CallTarget, callMethod, checkIdentity, encode, ServiceInfo, StubOptions } from './farcall_rpc';
`;
  // Types used, grouped by the flatc file that exports them ("<schema>_generated").
  const used = new Map<string, Set<string>>();
  const use = (o: ObjectModel, names: string[]) => {
    const file = `./${schemaBase(o.file)}_generated`;
    if (!used.has(file)) used.set(file, new Set());
    for (const n of names) used.get(file)!.add(n);
  };
  for (const svc of services) for (const m of svc.methods) {
    use(m.request, [`${m.request.short}T`]);
    use(m.response, [m.response.short, `${m.response.short}T`]);
  }
  for (const [file, names] of [...used].sort()) s += `import { ${[...names].sort().join(', ')} } from '${file}';\n`;
  s += `\nexport { RpcError, SchemaMismatchError } from './farcall_rpc';\nexport type { CallTarget, StubOptions } from './farcall_rpc';\n`;

  for (const svc of services) {
    const cls = `${svc.short}Client`;
    s += '\n' + docComment(svc.doc.length ? svc.doc : [`Host stub of service ${svc.name}.`], '', '/**');
    s += `export class ${cls} {
  static readonly info: ServiceInfo = {
    service: '${svc.name}',
    hash: ${hex64(svc.hash)}n,
    idEntry: '${svc.idEntry}',
    schema: '${path.basename(model.schemaFile)}',
    generator: '${GENERATOR}',
    methods: [
${svc.methods.map((m) => `      { name: '${m.name}', entry: '${m.entry}', hash: ${hex64(m.hash)}n, request: '${m.request.name}', response: '${m.response.name}' },`).join('\n')}
    ],
  };

  private readonly builder = new flatbuffers.Builder(1024);

  private constructor(readonly target: CallTarget, private readonly options: StubOptions) {}

  /**
   * Binds the stub to a backend after checking that it serves ${svc.name} generated from the
   * same schema; throws SchemaMismatchError (naming the methods that differ) otherwise.
   */
  static async connect(target: CallTarget, options: StubOptions = {}): Promise<${cls}> {
    await checkIdentity(target, ${cls}.info);
    return new ${cls}(target, options);
  }
`;
    svc.methods.forEach((m, i) => {
      const req = m.request.short;
      const resp = m.response.short;
      const name = lowerCamel(m.name);
      s += '\n' + docComment([...m.doc, ...(m.doc.length ? [''] : []),
        `${m.name}(${m.request.name}) -> ${m.response.name}, entry ${m.entry}: object API in and out.`,
        'The request may also be a finished buffer (Uint8Array). Throws RpcError.'], '  ', '/**');
      s += `  async ${name}(request: ${req}T | Uint8Array): Promise<${resp}T> {
    return (await this.${name}Reader(request)).unpack();
  }

  /** ${m.name}, answering flatc's reader over the reply instead: nothing is unpacked (vectors are read in place). */
  async ${name}Reader(request: ${req}T | Uint8Array): Promise<${resp}> {
    const bytes = request instanceof Uint8Array ? request : encode(this.builder, request);
    const bb = await callMethod(this.target, ${cls}.info, ${cls}.info.methods[${i}], bytes, this.options);
    return ${resp}.getRootAs${resp}(bb);
  }
`;
    });
    s += '}\n';
  }
  return s;
}
