// Broker configuration: every bad field reported at once with its path, unknown fields and
// file extensions refused, and a program that cannot be loaded named by its config key.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { Broker, ConfigError, loadConfigFile, NotElfError, validateConfig, WrongLayoutError } from '../src';
import { describeKvm, guest } from './helpers';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'farcall-config-'));
const write = (name: string, text: string) => {
  const f = path.join(dir, name);
  fs.writeFileSync(f, text);
  return f;
};

/** The ConfigError a config raises, with its issues. */
function issuesOf(fn: () => unknown): { message: string; issues: Array<{ path: string; message: string }> } {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    const err = e as ConfigError;
    return { message: err.message, issues: err.details.issues as Array<{ path: string; message: string }> };
  }
  throw new Error('the config was accepted');
}

const good = () => ({
  backends: { kv: { program: guest('counter_backend'), instances: 2 } },
  pools: { web: { program: guest('caller'), size: 2, backends: ['kv'] } },
  http: { expose: ['kv.host_echo'] },
});

describe('config validation', () => {
  test('a good config passes, with program paths made absolute against the base', () => {
    const cfg = validateConfig({ pools: { web: { program: path.relative(dir, guest('caller')) } } }, dir);
    expect(cfg.pools!.web.program).toBe(guest('caller'));
    expect(validateConfig(good()).http).toEqual({ expose: ['kv.host_echo'] });
  });

  test('files.scratch: accepted as the API takes it, and refused with the same words', () => {
    const cfg = good() as Record<string, any>;
    cfg.pools.web.files = { scratch: { path: '/var/tmp', maxMiB: 8 } };
    cfg.backends.kv.files = { scratch: {} };
    const ok = validateConfig(cfg);
    expect(ok.pools!.web.files).toEqual({ scratch: { path: '/var/tmp', maxMiB: 8 } });
    cfg.pools.web.files = { scratch: { path: '/' } };
    cfg.backends.kv.files = { scratch: { maxMiB: 0, size: 1 } };
    const { issues } = issuesOf(() => validateConfig(cfg));
    expect(issues).toEqual(
      expect.arrayContaining([
        { path: 'pools.web.files.scratch', message: 'path must not be "/" (the scratch directory overlays one directory of the view)' },
        { path: 'backends.kv.files.scratch', message: 'size is not a known option' },
      ]),
    );
  });

  test('every bad field is reported at once, each with its path', () => {
    const cfg = good() as Record<string, any>;
    cfg.pools.web.size = 0;
    cfg.pools.web.timeoutMs = '2000';
    cfg.pools.web.backends = ['kv', 'nope'];
    cfg.backends.kv.memoryMiB = 33;
    cfg.backends.kv.network = { allow: ['localhost:6379'] };
    cfg.backends.kv.trusted = 'yes';
    cfg.http.expose = ['kv.get', 'other.get', 'nodot'];
    const { message, issues } = issuesOf(() => validateConfig(cfg));
    expect(issues).toEqual(
      expect.arrayContaining([
        { path: 'pools.web.size', message: 'must be a whole number from 1 to 256, got 0' },
        { path: 'pools.web.timeoutMs', message: 'must be a whole number from 1 to 3600000, got "2000"' },
        { path: 'pools.web.backends[1]', message: 'no backend named "nope" in this config (backends: kv)' },
        { path: 'backends.kv.memoryMiB', message: 'must be an even whole number from 4 to 16384, got 33' },
        { path: 'backends.kv.network.allow[0]', message: '"localhost:6379" is not a numeric IPv4 "a.b.c.d:port"' },
        { path: 'backends.kv.trusted', message: 'must be true or false' },
        { path: 'http.expose[1]', message: 'no backend named "other" in this config (backends: kv)' },
        { path: 'http.expose[2]', message: '"nodot" is not "backend.entry"' },
      ]),
    );
    expect(issues).toHaveLength(8);
    expect(message).toMatch(/^config has 8 errors:\n {2}config backends\.kv\.memoryMiB: must be/);
    for (const i of issues) expect(message).toContain(`config ${i.path}: ${i.message}`);
  });

  test('unknown fields are refused, each at its own path, with the fields that exist', () => {
    const cfg = good() as Record<string, any>;
    cfg.pools.web.sise = 4;
    cfg.backends.kv.restart = { maxFaults: 3, windowMS: 100 };
    cfg.http.tokn = 'x';
    cfg.pool = {};
    const { issues } = issuesOf(() => validateConfig(cfg));
    expect(issues.map((i) => i.path).sort()).toEqual(['backends.kv.restart.windowMS', 'http.tokn', 'pool', 'pools.web.sise']);
    const sise = issues.find((i) => i.path === 'pools.web.sise')!;
    expect(sise.message).toMatch(/^unknown field \(expected one of: program, snapshot, size, .*maxQueue/);
    expect(issues.find((i) => i.path === 'pool')!.message).toBe('unknown field (expected one of: backends, pools, http)');
  });

  test('mistyped values are refused: strings for numbers, fractions, objects for lists, names that are not identifiers', () => {
    const { issues } = issuesOf(() =>
      validateConfig({
        backends: { 'bad-name': { program: guest('counter_backend') }, kv: { program: 42, instances: 1.5, args: 'a b', env: { A: 1 } } },
        pools: { web: { program: guest('nope_no_such_program'), maxQueue: -1 } },
        http: { token: 'short', bodyLimitBytes: 0 },
      }),
    );
    const byPath = Object.fromEntries(issues.map((i) => [i.path, i.message]));
    expect(byPath).toMatchObject({
      'backends.bad-name': 'backend names are identifiers (letters, digits, _)',
      'backends.kv.program': 'must be the path of a program',
      'backends.kv.instances': 'must be a whole number from 1 to 64, got 1.5',
      'backends.kv.args': 'must be a list of strings',
      'backends.kv.env.A': 'must be a string',
      'pools.web.program': `no such file: ${guest('nope_no_such_program')}`,
      'pools.web.maxQueue': 'must be a whole number from 0 to 1000000, got -1',
      'http.token': 'must be at least 16 characters',
      'http.bodyLimitBytes': `must be a whole number from 1 to ${64 << 20}, got 0`,
    });
    expect(issuesOf(() => validateConfig([])).issues[0].path).toBe('(top)');
  });

  test('a config file is read by its extension: .json and .toml; anything else is refused, not parsed as JSON', () => {
    const json = JSON.stringify({ pools: { web: { program: guest('caller') } } });
    expect(loadConfigFile(write('a.json', json)).pools!.web.program).toBe(guest('caller'));
    expect(loadConfigFile(write('a.toml', `[pools.web]\nprogram = ${JSON.stringify(guest('caller'))}\n`)).pools!.web.program).toBe(guest('caller'));
    for (const name of ['a.yaml', 'a.conf', 'a', 'a.json.bak']) {
      const f = write(name, json); // valid JSON inside: still refused
      expect(() => loadConfigFile(f)).toThrow(ConfigError);
      expect(() => loadConfigFile(f)).toThrow(/unknown extension ".*" \(expected one of: \.json, \.toml\)/);
    }
    expect(() => loadConfigFile(write('b.json', '{ "pools": '))).toThrow(/is not valid JSON/);
    expect(() => loadConfigFile(write('b.toml', 'pools = ['))).toThrow(/is not valid TOML/);
    // Errors in a file name the file.
    expect(() => loadConfigFile(write('c.json', '{"pools": {"web": {"program": 1, "size": 0}}}'))).toThrow(/^config .*c\.json has 2 errors/);
  });
});

describeKvm('config: programs that cannot be loaded are named by their config key and path', () => {
  test('NotElf for a pool program, WrongLayout for a request program given as a backend', async () => {
    const notElf = write('not_elf', 'just text\n');
    await expect(Broker.start({ pools: { web: { program: notElf } } })).rejects.toThrow(NotElfError);
    await expect(Broker.start({ pools: { web: { program: notElf } } })).rejects.toThrow(
      new RegExp(`^config pools\\.web\\.program \\(${notElf}\\): `),
    );
    const wrong = Broker.start({ backends: { kv: { program: guest('caller') } } });
    await expect(wrong).rejects.toThrow(WrongLayoutError);
    await expect(Broker.start({ backends: { kv: { program: guest('caller') } } })).rejects.toMatchObject({
      message: expect.stringMatching(new RegExp(`^config backends\\.kv\\.program \\(${guest('caller')}\\): `)),
      details: { configKey: 'backends.kv.program', path: guest('caller') },
    });
  });
});
