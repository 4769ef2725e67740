/**
 * TLS key and certificate files, read at startup and re-read when they change (cert-manager and Kubernetes secret
 * mounts replace them in place), so a rotated certificate takes effect without a restart. A change that does not
 * load (half-written file, mismatched pair) is logged and the previous pair stays in use.
 */
import fs from 'node:fs';
import tls from 'node:tls';
import { StartupError } from '../errors/index.ts';

export interface CertificatePair {
  key: Buffer;
  cert: Buffer;
}

interface Log {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

/** How often the files are polled: fs.watch misses the symlink swaps of Kubernetes secret volumes. */
const POLL_MS = 2000;

export class CertificateFiles {
  readonly #paths: { key: string; cert: string };
  readonly #log: Log;
  #pair: CertificatePair;
  #listener: (() => void) | undefined;

  constructor(paths: { key: string; cert: string }, log: Log) {
    this.#paths = paths;
    this.#log = log;
    try {
      this.#pair = this.#read();
    } catch (err) {
      throw new StartupError(`tls: cannot load ${paths.cert} / ${paths.key}: ${(err as Error).message}`, { cause: err });
    }
  }

  current(): CertificatePair {
    return this.#pair;
  }

  #read(): CertificatePair {
    const pair = { key: fs.readFileSync(this.#paths.key), cert: fs.readFileSync(this.#paths.cert) };
    tls.createSecureContext(pair); // throws on a bad or mismatched pair
    return pair;
  }

  /** Calls `apply` with the new pair whenever either file changes and the new pair loads. */
  watch(apply: (pair: CertificatePair) => void): void {
    const onChange = (): void => {
      try {
        const next = this.#read();
        if (next.cert.equals(this.#pair.cert) && next.key.equals(this.#pair.key)) return;
        apply(next);
        this.#pair = next;
        this.#log.info({ cert: this.#paths.cert }, 'tls: certificate reloaded');
      } catch (err) {
        this.#log.warn({ cert: this.#paths.cert, err: (err as Error).message }, 'tls: changed certificate does not load; keeping the previous one');
      }
    };
    this.#listener = onChange;
    fs.watchFile(this.#paths.cert, { interval: POLL_MS, persistent: false }, onChange);
    fs.watchFile(this.#paths.key, { interval: POLL_MS, persistent: false }, onChange);
  }

  close(): void {
    if (!this.#listener) return;
    fs.unwatchFile(this.#paths.cert, this.#listener);
    fs.unwatchFile(this.#paths.key, this.#listener);
  }
}
