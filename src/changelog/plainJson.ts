import { MalformedRecordError } from '../support/errors.js';
import { compareBytes } from './byteColumn.js';
import { decimalSortKeyOf, InvalidNumberError } from './decimalSortKey.js';

/**
 * DynamoDB JSON (`{"price":{"N":"1.50"},"tags":{"SS":["y","x"]}}`, the text segments store) to
 * plain JSON (`{"price":"1.50","tags":["x","y"]}`), for readers that want values, not type tags.
 *
 * - N: the stored decimal text as a JSON string, never a JSON number: a 38-digit DynamoDB number
 *   would lose digits in every reader that parses numbers as doubles.
 * - S, B: the stored JSON string as it is (B stays base64). BOOL: true/false. NULL: null.
 * - M: an object, attributes in stored order. L: an array.
 * - SS, NS, BS: arrays in a canonical order (sets have none, and two readers of the same item should
 *   see the same text): SS by UTF-8 bytes, NS by numeric value, BS by the decoded bytes.
 *
 * The text is walked once and string tokens are copied verbatim (no decode and re-encode), which
 * also keeps attribute order (JSON.parse would move integer-like names first) and any attribute
 * name, `__proto__` included. Malformed input throws a MalformedRecordError naming the attribute
 * path (`new_image.address.lines[2]`) and what was found there.
 */
export function plainJsonFromDynamoJson(dynamoJson: string, rootName = '$'): string {
  return new PlainJsonConverter(dynamoJson, rootName).document();
}

/** DynamoDB nests at most 32 levels; more means corrupt input, refused before the stack runs out. */
const MAX_DEPTH = 64;

const NUMBER = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const PLAIN_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const TYPES = 'S, N, B, BOOL, NULL, M, L, SS, NS, BS';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** A set element: its JSON token as stored, and what it sorts by. */
interface SetElement {
  token: string;
  sortKey: Uint8Array | string;
}

class PlainJsonConverter {
  private i = 0;
  /** Attribute names (raw JSON tokens) and list indexes from the root to where the walk is. */
  private readonly path: (string | number)[] = [];

  constructor(
    private readonly text: string,
    private readonly rootName: string,
  ) {}

  document(): string {
    this.skipWhitespace();
    const out = this.item(0);
    this.skipWhitespace();
    if (this.i !== this.text.length) this.fail(`expected the end of the text, found ${this.found()}`);
    return out;
  }

  /** An attribute map: `{"name":AttributeValue,...}` -> `{"name":plain,...}`. */
  private item(depth: number): string {
    if (depth > MAX_DEPTH) this.fail(`nested deeper than ${MAX_DEPTH} levels`);
    this.expect('{', 'an attribute map');
    this.skipWhitespace();
    if (this.peek() === '}') {
      this.i++;
      return '{}';
    }
    let out = '{';
    for (;;) {
      const name = this.stringToken('an attribute name');
      this.skipWhitespace();
      this.expect(':', "':' after an attribute name");
      this.skipWhitespace();
      this.path.push(name);
      out += name + ':' + this.attributeValue(depth);
      this.path.pop();
      this.skipWhitespace();
      const c = this.peek();
      this.i++;
      if (c === '}') return out + '}';
      if (c !== ',') {
        this.i--;
        this.fail(`expected ',' or '}' after an attribute, found ${this.found()}`);
      }
      out += ',';
      this.skipWhitespace();
    }
  }

  /** `{"TYPE":value}` -> the plain value. */
  private attributeValue(depth: number): string {
    this.expect('{', 'an AttributeValue object like {"S":"text"}');
    this.skipWhitespace();
    const typeToken = this.stringToken('a type name');
    const type = typeToken.slice(1, -1);
    this.skipWhitespace();
    this.expect(':', "':' after the type name");
    this.skipWhitespace();
    let out: string;
    switch (type) {
      case 'S':
      case 'B':
        out = this.stringToken(`a ${type} value (a JSON string)`);
        break;
      case 'N':
        out = this.numberToken();
        break;
      case 'BOOL':
        out = this.literal(['true', 'false'], 'BOOL');
        break;
      case 'NULL':
        // DynamoDB only sends true; false has no other meaning, so it is read as null too.
        this.literal(['true', 'false'], 'NULL');
        out = 'null';
        break;
      case 'M':
        out = this.item(depth + 1);
        break;
      case 'L':
        out = this.list(depth + 1);
        break;
      case 'SS':
        // Code points compare like UTF-8 bytes (see compareCodePoints).
        out = this.set('SS', (token) => this.stringContent(token));
        break;
      case 'NS':
        out = this.set('NS', (token) => this.numberSortKey(token));
        break;
      case 'BS':
        out = this.set('BS', (token) => Buffer.from(this.stringContent(token), 'base64'));
        break;
      default:
        this.fail(`expected one of the DynamoDB types ${TYPES}, found ${typeToken}`);
    }
    this.skipWhitespace();
    if (this.peek() === ',') this.fail(`an AttributeValue has one member; found a second after ${type}`);
    this.expect('}', `'}' closing the ${type} value`);
    return out;
  }

  private list(depth: number): string {
    if (depth > MAX_DEPTH) this.fail(`nested deeper than ${MAX_DEPTH} levels`);
    this.expect('[', 'an L value (a JSON array)');
    this.skipWhitespace();
    if (this.peek() === ']') {
      this.i++;
      return '[]';
    }
    let out = '[';
    for (let index = 0; ; index++) {
      this.path.push(index);
      out += this.attributeValue(depth);
      this.path.pop();
      this.skipWhitespace();
      const c = this.peek();
      this.i++;
      if (c === ']') return out + ']';
      if (c !== ',') {
        this.i--;
        this.fail(`expected ',' or ']' in an L value, found ${this.found()}`);
      }
      out += ',';
      this.skipWhitespace();
    }
  }

  /** An SS/NS/BS array of JSON strings, re-ordered by `sortKey`, tokens kept as stored. */
  private set(type: string, sortKey: (token: string) => Uint8Array | string): string {
    this.expect('[', `an ${type} value (a JSON array of strings)`);
    this.skipWhitespace();
    const elements: SetElement[] = [];
    if (this.peek() === ']') {
      this.i++;
      return '[]';
    }
    for (let index = 0; ; index++) {
      this.path.push(index);
      const token = this.stringToken(`an ${type} element (a JSON string)`);
      elements.push({ token, sortKey: sortKey(token) });
      this.path.pop();
      this.skipWhitespace();
      const c = this.peek();
      this.i++;
      if (c === ']') break;
      if (c !== ',') {
        this.i--;
        this.fail(`expected ',' or ']' in an ${type} value, found ${this.found()}`);
      }
      this.skipWhitespace();
    }
    elements.sort(compareElements);
    let out = '[';
    for (let k = 0; k < elements.length; k++) out += (k === 0 ? '' : ',') + elements[k]!.token;
    return out + ']';
  }

  private numberToken(): string {
    const token = this.stringToken('an N value (a JSON string of decimal digits)');
    const text = this.stringContent(token);
    if (!NUMBER.test(text)) this.fail(`N value ${token} is not a decimal number`);
    return token;
  }

  private numberSortKey(token: string): Uint8Array {
    const text = this.stringContent(token);
    try {
      return decimalSortKeyOf(text);
    } catch (error) {
      if (error instanceof InvalidNumberError) this.fail(`NS element ${token} is not a decimal number`);
      throw error;
    }
  }

  /** The string a JSON string token holds (decoded only when it has escapes). */
  private stringContent(token: string): string {
    return token.includes('\\') ? (JSON.parse(token) as string) : token.slice(1, -1);
  }

  /** The JSON string token at the cursor, quotes included, as it is in the text. */
  private stringToken(what: string): string {
    const text = this.text;
    const start = this.i;
    if (text.charCodeAt(start) !== QUOTE) this.fail(`expected ${what}, found ${this.found()}`);
    let from = start + 1;
    for (;;) {
      const quote = text.indexOf('"', from);
      if (quote < 0) this.fail(`unterminated string starting at offset ${start}`);
      // The quote closes the string unless an odd number of backslashes precede it.
      let b = quote - 1;
      while (text.charCodeAt(b) === BACKSLASH) b--;
      if ((quote - 1 - b) % 2 === 0) {
        this.i = quote + 1;
        return text.slice(start, quote + 1);
      }
      from = quote + 1;
    }
  }

  private literal(allowed: readonly string[], type: string): string {
    for (const word of allowed) {
      if (this.text.startsWith(word, this.i)) {
        this.i += word.length;
        return word;
      }
    }
    return this.fail(`expected ${allowed.join(' or ')} as the ${type} value, found ${this.found()}`);
  }

  private expect(char: string, what: string): void {
    if (this.text[this.i] !== char) this.fail(`expected ${what}, found ${this.found()}`);
    this.i++;
  }

  private peek(): string | undefined {
    return this.text[this.i];
  }

  private skipWhitespace(): void {
    const text = this.text;
    let c = text.charCodeAt(this.i);
    while (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) c = text.charCodeAt(++this.i);
  }

  private found(): string {
    if (this.i >= this.text.length) return 'the end of the text';
    const rest = this.text.slice(this.i, this.i + 20);
    return `${JSON.stringify(rest)}${this.i + 20 < this.text.length ? '...' : ''} at offset ${this.i}`;
  }

  private fail(problem: string): never {
    let where = this.rootName;
    for (const step of this.path) {
      if (typeof step === 'number') {
        where += `[${step}]`;
        continue;
      }
      const name = this.stringContent(step);
      where += PLAIN_NAME.test(name) ? `.${name}` : `[${JSON.stringify(name)}]`;
    }
    throw new MalformedRecordError(`${where}: ${problem}`);
  }
}

function compareElements(a: SetElement, b: SetElement): number {
  const c =
    typeof a.sortKey === 'string'
      ? compareCodePoints(a.sortKey, b.sortKey as string)
      : compareBytes(
          a.sortKey,
          0,
          a.sortKey.length,
          b.sortKey as Uint8Array,
          0,
          (b.sortKey as Uint8Array).length,
        );
  // Equal keys (1 and 1.0 in a corrupt set): the stored text decides, so the output is still fixed.
  return c !== 0 ? c : a.token < b.token ? -1 : a.token > b.token ? 1 : 0;
}

/**
 * Compares strings by code point, which is UTF-8 byte order. UTF-16 units agree except that
 * surrogates (D800-DFFF, code points above FFFF) must sort after E000-FFFF: shift them past it.
 */
function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let k = 0; k < n; k++) {
    let x = a.charCodeAt(k);
    let y = b.charCodeAt(k);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) {
      x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
      y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
    }
    return x - y;
  }
  return a.length - b.length;
}
