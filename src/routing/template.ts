/**
 * google.api.http path templates (google/api/http.proto), parsed once at startup into data:
 *
 *   Template  = "/" Segments [ Verb ] ;
 *   Segments  = Segment { "/" Segment } ;
 *   Segment   = "*" | "**" | LITERAL | Variable ;
 *   Variable  = "{" FieldPath [ "=" Segments ] "}" ;
 *   FieldPath = IDENT { "." IDENT } ;
 *   Verb      = ":" LITERAL ;
 *
 * Beyond the grammar we enforce what http.proto states in prose or what the matcher needs to stay unambiguous:
 * variables do not nest, a field is bound at most once (and not together with one of its sub-fields), and a
 * template has at most one "**" - anywhere, not only last (Firestore puts it mid-path) - so which path segments
 * it captures is decided by the segment count alone. IDENT is [A-Za-z_][A-Za-z0-9_]*; LITERAL is a run of RFC 3986
 * pchar minus the characters the grammar itself uses (see isLiteralChar), percent-escapes included.
 */
import { TemplateSyntaxError } from './errors.ts';
import { isLiteralChar } from './encoding.ts';

export type TemplateSegment =
  | { readonly kind: 'literal'; readonly value: string }
  | { readonly kind: '*' }
  | { readonly kind: '**' };

export interface TemplateVariable {
  /** e.g. ["book", "name"] for {book.name=...}. */
  readonly fieldPath: readonly string[];
  /** Index of the first template segment the variable captures. */
  readonly start: number;
  /** Index one past the last template segment the variable captures. */
  readonly end: number;
}

const STAR: TemplateSegment = Object.freeze({ kind: '*' });
const DOUBLE_STAR: TemplateSegment = Object.freeze({ kind: '**' });

/** A compiled template. Immutable; build one with parseTemplate(). */
export class PathTemplate {
  readonly segments: readonly TemplateSegment[];
  /** The custom verb without its ':', or undefined. */
  readonly verb: string | undefined;
  readonly variables: readonly TemplateVariable[];
  /** Index of the "**" segment, or -1. */
  readonly doubleStarIndex: number;

  constructor(segments: readonly TemplateSegment[], verb: string | undefined, variables: readonly TemplateVariable[]) {
    this.segments = Object.freeze([...segments]);
    this.verb = verb;
    this.variables = Object.freeze(
      variables.map((v) => Object.freeze({ fieldPath: Object.freeze([...v.fieldPath]), start: v.start, end: v.end })),
    );
    this.doubleStarIndex = this.segments.findIndex((s) => s.kind === '**');
    Object.freeze(this);
  }

  /** True when the variable may capture more than one path segment (http.proto keeps %2F encoded then). */
  isMultiSegment(variable: TemplateVariable): boolean {
    return variable.end - variable.start > 1 || this.segments[variable.start].kind === '**';
  }

  /** Canonical text; parseTemplate(t.toString()) is structurally equal to t. `{x=*}` prints as `{x}`. */
  toString(): string {
    let out = '';
    let i = 0;
    for (const variable of this.variables) {
      for (; i < variable.start; i++) out += '/' + segmentText(this.segments[i]);
      const inner = this.segments.slice(variable.start, variable.end);
      const name = variable.fieldPath.join('.');
      const plain = inner.length === 1 && inner[0].kind === '*';
      out += `/{${name}${plain ? '' : '=' + inner.map(segmentText).join('/')}}`;
      i = variable.end;
    }
    for (; i < this.segments.length; i++) out += '/' + segmentText(this.segments[i]);
    return this.verb === undefined ? out : `${out}:${this.verb}`;
  }
}

function segmentText(segment: TemplateSegment): string {
  return segment.kind === 'literal' ? segment.value : segment.kind;
}

/** Parses a google.api.http path template; throws TemplateSyntaxError naming the position and what was expected. */
export function parseTemplate(text: string): PathTemplate {
  return new Parser(text).parse();
}

const SEGMENT = "a segment ('*', '**', a literal or a {variable})";

class Parser {
  readonly #text: string;
  #pos = 0;
  readonly #segments: TemplateSegment[] = [];
  readonly #variables: TemplateVariable[] = [];
  #inVariable = false;

  constructor(text: string) {
    this.#text = text;
  }

  // Template = "/" Segments [ Verb ] ;
  parse(): PathTemplate {
    if (!this.#eat('/')) this.#fail("'/' at the start of the template");
    this.#parseSegments();
    let verb: string | undefined;
    if (this.#peek() === ':') verb = this.#parseVerb();
    if (this.#pos < this.#text.length) {
      this.#fail(verb === undefined ? "'/', ':verb' or the end of the template" : 'the end of the template after the verb');
    }
    return new PathTemplate(this.#segments, verb, this.#variables);
  }

  // Segments = Segment { "/" Segment } ;
  #parseSegments(): void {
    this.#parseSegment();
    while (this.#eat('/')) this.#parseSegment();
  }

  // Segment = "*" | "**" | LITERAL | Variable ;
  #parseSegment(): void {
    const start = this.#pos;
    const c = this.#peek();
    if (c === '*') {
      this.#pos += 1;
      if (!this.#eat('*')) {
        this.#segments.push(STAR);
        return;
      }
      if (this.#segments.some((s) => s.kind === '**')) this.#fail("at most one '**' per template", start);
      this.#segments.push(DOUBLE_STAR);
    } else if (c === '{') {
      if (this.#inVariable) this.#fail(`${SEGMENT}; variables cannot be nested`);
      this.#parseVariable();
    } else {
      this.#segments.push({ kind: 'literal', value: this.#parseLiteral(SEGMENT) });
    }
  }

  // Variable = "{" FieldPath [ "=" Segments ] "}" ;
  #parseVariable(): void {
    const open = this.#pos;
    this.#pos += 1;
    const fieldPath = this.#parseFieldPath();
    this.#checkNotBound(fieldPath, open + 1);
    const start = this.#segments.length;
    this.#inVariable = true;
    if (this.#eat('=')) this.#parseSegments();
    else this.#segments.push(STAR); // {var} is {var=*}
    this.#inVariable = false;
    if (!this.#eat('}')) this.#fail("'/' or '}' to close the variable");
    this.#variables.push({ fieldPath, start, end: this.#segments.length });
  }

  // FieldPath = IDENT { "." IDENT } ;
  #parseFieldPath(): string[] {
    const path = [this.#parseIdent()];
    while (this.#eat('.')) path.push(this.#parseIdent());
    if (this.#peek() !== '=' && this.#peek() !== '}') this.#fail("'.', '=' or '}' after the field path");
    return path;
  }

  // IDENT = ( letter | "_" ) { letter | digit | "_" } ;
  #parseIdent(): string {
    const start = this.#pos;
    while (this.#pos < this.#text.length && isIdentChar(this.#text.charCodeAt(this.#pos), this.#pos === start)) {
      this.#pos += 1;
    }
    if (this.#pos === start) this.#fail('a field name ([A-Za-z_][A-Za-z0-9_]*)');
    return this.#text.slice(start, this.#pos);
  }

  // Verb = ":" LITERAL ;
  #parseVerb(): string {
    this.#pos += 1;
    return this.#parseLiteral('a custom verb after \':\'');
  }

  // LITERAL = 1*( pchar without "/" ":" "=" "*" "{" "}" | "%" HEXDIG HEXDIG ) ;
  #parseLiteral(expected: string): string {
    const start = this.#pos;
    while (this.#pos < this.#text.length) {
      const code = this.#text.charCodeAt(this.#pos);
      if (code === 0x25) {
        if (!/^%[0-9A-Fa-f]{2}/.test(this.#text.slice(this.#pos, this.#pos + 3))) {
          this.#fail("a percent-escape '%' HEXDIG HEXDIG");
        }
        this.#pos += 3;
      } else if (isLiteralChar(code)) {
        this.#pos += 1;
      } else {
        break;
      }
    }
    if (this.#pos === start) this.#fail(expected);
    return this.#text.slice(start, this.#pos);
  }

  #checkNotBound(fieldPath: readonly string[], at: number): void {
    const name = fieldPath.join('.');
    for (const other of this.#variables) {
      const otherName = other.fieldPath.join('.');
      if (otherName === name) this.#fail(`a field not bound already ('${name}' is bound twice)`, at);
      if (name.startsWith(otherName + '.') || otherName.startsWith(name + '.')) {
        this.#fail(`a field not overlapping another binding ('${name}' and '${otherName}')`, at);
      }
    }
  }

  #peek(): string | undefined {
    return this.#text[this.#pos];
  }

  #eat(c: string): boolean {
    if (this.#text[this.#pos] !== c) return false;
    this.#pos += 1;
    return true;
  }

  #fail(expected: string, position = this.#pos): never {
    throw new TemplateSyntaxError(this.#text, position, expected);
  }
}

function isIdentChar(code: number, first: boolean): boolean {
  const lower = code | 0x20;
  if (lower >= 0x61 && lower <= 0x7a) return true;
  if (code === 0x5f) return true;
  return !first && code >= 0x30 && code <= 0x39;
}
