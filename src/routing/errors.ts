/**
 * Errors of the routing module. They are plain `Error`s on purpose: routing imports nothing from the rest of
 * protogate, so the HTTP layer maps them (TemplateSyntaxError at startup, PathDecodeError -> 400 INVALID_ARGUMENT).
 */

/** A path template that does not follow the google.api.http grammar (or breaks one of its rules). */
export class TemplateSyntaxError extends Error {
  override readonly name = 'TemplateSyntaxError';
  readonly template: string;
  /** 0-based character offset into `template` where the problem was found. */
  readonly position: number;
  /** What the parser expected there, or which rule was broken. */
  readonly expected: string;
  /** Where the template came from, when known (e.g. "library.v1.Library.GetBook (protos/library.proto)"). */
  readonly source: string | undefined;

  constructor(template: string, position: number, expected: string, source?: string) {
    const found = position < template.length ? `'${template[position]}'` : 'end of template';
    const where = source === undefined ? '' : ` (in ${source})`;
    super(
      `invalid path template ${JSON.stringify(template)}${where} at position ${position}: ` +
        `expected ${expected}, found ${found}`,
    );
    this.template = template;
    this.position = position;
    this.expected = expected;
    this.source = source;
  }
}

/**
 * A request path matched a route, but a value bound to a variable is not valid percent-encoded UTF-8.
 * The caller should answer 400: the client sent a malformed URL, the route itself is fine.
 */
export class PathDecodeError extends Error {
  override readonly name = 'PathDecodeError';
  /** The raw (still encoded) path segment that failed to decode. */
  readonly segment: string;
  /** The field path of the variable the segment was bound to, dot-joined. */
  readonly field: string;

  constructor(segment: string, field: string, reason: string) {
    super(`invalid path: ${reason} in ${JSON.stringify(segment)} (bound to field "${field}")`);
    this.segment = segment;
    this.field = field;
  }
}
