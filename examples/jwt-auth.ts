/**
 * A worked `hooks.onRequest`: verify an HS256 JWT from `Authorization: Bearer <token>`, refuse the request with
 * UNAUTHENTICATED (HTTP 401) when it is missing, malformed, badly signed or expired, and pass the caller's identity to
 * the backend as metadata. node:crypto only; for RS256/JWKS use a maintained library such as `jose` in the same shape.
 *
 *   import { jwtAuth } from './examples/jwt-auth.ts';
 *   export default defineConfig({ ..., hooks: { onRequest: jwtAuth({ secret: process.env.JWT_SECRET! }) } });
 */
import crypto from 'node:crypto';
import type { HookRequest, HookResult, OnRequestHook } from '../src/config/define.ts';

export interface JwtAuthOptions {
  /** The HS256 shared secret. */
  secret: string;
  /** Routes (by gRPC service) that need no token. */
  publicServices?: string[];
  /** Clock skew allowed on `exp` and `nbf`, in seconds. */
  leewaySeconds?: number;
}

const UNAUTHENTICATED = 16;

export function jwtAuth(options: JwtAuthOptions): OnRequestHook {
  const key = Buffer.from(options.secret, 'utf8');
  const open = new Set(options.publicServices ?? []);
  const leeway = options.leewaySeconds ?? 30;
  const reject = (message: string): HookResult => ({ reject: { code: UNAUTHENTICATED, message } });

  return (req: HookRequest): HookResult | void => {
    if (open.has(req.route.service)) return;
    const header = req.headers['authorization'];
    const value = Array.isArray(header) ? header[0] : header;
    const m = value ? /^Bearer ([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)$/.exec(value) : null;
    if (!m) return reject('missing or malformed bearer token');
    const [, head, body, sig] = m as unknown as [string, string, string, string];
    let header0: { alg?: string };
    let claims: { sub?: string; exp?: number; nbf?: number; scope?: string };
    try {
      header0 = JSON.parse(Buffer.from(head, 'base64url').toString('utf8'));
      claims = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'));
    } catch {
      return reject('malformed bearer token');
    }
    if (header0.alg !== 'HS256') return reject('unsupported token algorithm');
    const expected = crypto.createHmac('sha256', key).update(`${head}.${body}`).digest();
    const given = Buffer.from(sig, 'base64url');
    if (given.length !== expected.length || !crypto.timingSafeEqual(given, expected)) return reject('invalid token signature');
    const now = Date.now() / 1000;
    if (typeof claims.exp === 'number' && now > claims.exp + leeway) return reject('token expired');
    if (typeof claims.nbf === 'number' && now < claims.nbf - leeway) return reject('token not yet valid');
    // The backend sees who is calling, not the token itself.
    req.metadata.remove('authorization');
    if (claims.sub) req.metadata.set('x-user-id', claims.sub);
    if (claims.scope) req.metadata.set('x-user-scope', claims.scope);
  };
}

/** Makes an HS256 token (for tests and local tries). */
export function signJwt(claims: Record<string, unknown>, secret: string): string {
  const head = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).toString('base64url');
  const body = Buffer.from(JSON.stringify(claims)).toString('base64url');
  const sig = crypto.createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}
