// A tiny RESP client for the host side of the connection-pool sample (checks and setup: the
// guests speak to Redis themselves, from the backend).
import * as net from 'net';

export type RespValue = string | number | null | RespValue[] | Error;

export class RespClient {
  private buf = Buffer.alloc(0);
  private waiting: Array<{ resolve: (v: RespValue) => void; reject: (e: Error) => void }> = [];
  private constructor(private readonly sock: net.Socket) {
    sock.on('data', (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      for (;;) {
        const r = parse(this.buf, 0);
        if (!r) break;
        this.buf = this.buf.subarray(r.end);
        this.waiting.shift()?.resolve(r.value);
      }
    });
    sock.on('error', (e) => this.failAll(e));
    sock.on('close', () => this.failAll(new Error('redis connection closed')));
  }

  static connect(port: number, host = '127.0.0.1'): Promise<RespClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, host);
      s.once('connect', () => {
        s.off('error', reject);
        resolve(new RespClient(s));
      });
      s.once('error', reject);
    });
  }

  private failAll(e: Error): void {
    for (const w of this.waiting.splice(0)) w.reject(e);
  }

  command(...args: Array<string | number>): Promise<RespValue> {
    const parts = [`*${args.length}\r\n`];
    for (const a of args) {
      const s = String(a);
      parts.push(`$${Buffer.byteLength(s)}\r\n${s}\r\n`);
    }
    return new Promise((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.sock.write(parts.join(''));
    });
  }

  close(): void {
    this.sock.destroy();
  }
}

function parse(b: Buffer, at: number): { value: RespValue; end: number } | null {
  const nl = b.indexOf('\r\n', at);
  if (nl < 0) return null;
  const t = String.fromCharCode(b[at]);
  const line = b.toString('utf8', at + 1, nl);
  const next = nl + 2;
  if (t === '+') return { value: line, end: next };
  if (t === '-') return { value: new Error(line), end: next };
  if (t === ':') return { value: Number(line), end: next };
  if (t === '$') {
    const n = Number(line);
    if (n < 0) return { value: null, end: next };
    if (b.length < next + n + 2) return null;
    return { value: b.toString('utf8', next, next + n), end: next + n + 2 };
  }
  if (t === '*') {
    const n = Number(line);
    if (n < 0) return { value: null, end: next };
    const out: RespValue[] = [];
    let p = next;
    for (let i = 0; i < n; i++) {
      const r = parse(b, p);
      if (!r) return null;
      out.push(r.value);
      p = r.end;
    }
    return { value: out, end: p };
  }
  throw new Error(`bad RESP reply type ${JSON.stringify(t)}`);
}
