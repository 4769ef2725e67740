/**
 * Percent-encoding rules of google.api.http (http.proto, "Path template syntax"):
 * - a variable bound to ONE segment is sent with everything but [-_.~0-9a-zA-Z] percent-encoded and is fully
 *   decoded by the server (so "%2F" becomes "/");
 * - a variable bound to SEVERAL segments is sent with everything but [-_.~/0-9a-zA-Z] encoded and decoded
 *   "except %2F and %2f are left unchanged".
 * Literal segments are compared after RFC 3986 section 6.2.2 normalisation: percent-encoded unreserved characters
 * are decoded and the hex digits of the remaining escapes upper-cased, so "/v1/%62ooks" reaches literal "books",
 * while "/v1/a%2Fb" never equals two literal segments "a/b".
 */

// Non-streaming decode() keeps no state between calls, so sharing one decoder is safe.
const UTF8 = new TextDecoder('utf-8', { fatal: true });

function hexValue(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  const lower = code | 0x20;
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x61 + 10;
  return -1;
}

/** RFC 3986 unreserved: ALPHA / DIGIT / "-" / "." / "_" / "~". */
export function isUnreserved(code: number): boolean {
  return (
    (code >= 0x30 && code <= 0x39) ||
    ((code | 0x20) >= 0x61 && (code | 0x20) <= 0x7a) ||
    code === 0x2d ||
    code === 0x2e ||
    code === 0x5f ||
    code === 0x7e
  );
}

/**
 * Characters a LITERAL may contain in a template: RFC 3986 pchar without the ones the template grammar uses
 * (":" starts the verb, "=" and "*" belong to variables and wildcards). "%" is checked separately (must be %XX).
 */
export function isLiteralChar(code: number): boolean {
  if (isUnreserved(code)) return true;
  switch (code) {
    case 0x21: // !
    case 0x24: // $
    case 0x26: // &
    case 0x27: // '
    case 0x28: // (
    case 0x29: // )
    case 0x2b: // +
    case 0x2c: // ,
    case 0x3b: // ;
    case 0x40: // @
      return true;
    default:
      return false;
  }
}

/**
 * The key a segment is compared under when matched against a literal. Segments without "%" (nearly all) are
 * returned as they are, without allocating. An invalid escape is left as is: it can never equal a (validated)
 * template literal, so the segment simply does not match one.
 */
export function literalKey(segment: string): string {
  if (!segment.includes('%')) return segment;
  let out = '';
  let i = 0;
  while (i < segment.length) {
    const ch = segment.charCodeAt(i);
    if (ch === 0x25 && i + 2 < segment.length) {
      const hi = hexValue(segment.charCodeAt(i + 1));
      const lo = hexValue(segment.charCodeAt(i + 2));
      if (hi >= 0 && lo >= 0) {
        const byte = hi * 16 + lo;
        out += isUnreserved(byte) ? String.fromCharCode(byte) : '%' + segment.slice(i + 1, i + 3).toUpperCase();
        i += 3;
        continue;
      }
    }
    out += segment[i];
    i += 1;
  }
  return out;
}

/**
 * Percent-decodes one path segment as UTF-8. With `keepSlash`, "%2F"/"%2f" stay exactly as received (multi-segment
 * captures). Returns undefined when an escape is malformed or the bytes are not UTF-8; see decodeFailure().
 */
export function decodeSegment(segment: string, keepSlash: boolean): string | undefined {
  if (!segment.includes('%')) return segment;
  let out = '';
  let runStart = 0;
  let i = 0;
  while (i < segment.length) {
    if (segment.charCodeAt(i) !== 0x25) {
      i += 1;
      continue;
    }
    out += segment.slice(runStart, i);
    const bytes: number[] = [];
    // Consecutive escapes are collected first: one multi-byte UTF-8 character spans several of them.
    while (i < segment.length && segment.charCodeAt(i) === 0x25) {
      if (i + 2 >= segment.length) return undefined;
      const hi = hexValue(segment.charCodeAt(i + 1));
      const lo = hexValue(segment.charCodeAt(i + 2));
      if (hi < 0 || lo < 0) return undefined;
      const byte = hi * 16 + lo;
      if (keepSlash && byte === 0x2f) {
        if (bytes.length > 0) {
          const text = utf8(bytes);
          if (text === undefined) return undefined;
          out += text;
          bytes.length = 0;
        }
        out += segment.slice(i, i + 3);
      } else {
        bytes.push(byte);
      }
      i += 3;
    }
    if (bytes.length > 0) {
      const text = utf8(bytes);
      if (text === undefined) return undefined;
      out += text;
    }
    runStart = i;
  }
  return out + segment.slice(runStart);
}

function utf8(bytes: number[]): string | undefined {
  try {
    return UTF8.decode(new Uint8Array(bytes));
  } catch {
    return undefined;
  }
}

/** Why decodeSegment() refused a segment; only called on the error path. */
export function decodeFailure(segment: string): string {
  for (let i = 0; i < segment.length; i++) {
    if (segment.charCodeAt(i) !== 0x25) continue;
    const escape = segment.slice(i, i + 3);
    if (escape.length < 3 || hexValue(escape.charCodeAt(1)) < 0 || hexValue(escape.charCodeAt(2)) < 0) {
      return `malformed percent-escape ${JSON.stringify(escape)} at offset ${i}`;
    }
  }
  return 'percent-escapes that are not valid UTF-8';
}
