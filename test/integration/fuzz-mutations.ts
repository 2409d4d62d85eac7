/**
 * What the fuzz test makes of a valid-looking base: truncated, wrong types, stripped fields,
 * prototype keys, unicode and byte edge cases, odd numbers, deep nesting, wide arrays and objects
 * (1,000-60,000 elements), and a few 1-3 MiB payloads (test/integration/fuzz.test.ts).
 */
import * as fc from 'fast-check';
import { MAX_PAYLOAD_BYTES } from '../../shared/codec.js';
import { MIB, Raw, Obj, type J, type Path, ser, allPaths, getAt, leafPaths, replaceAt, mapObjects } from './fuzz-json.js';
import { short, type Gen, utf8 } from './fuzz-bases.js';

export const SPECIAL_NUMBERS = [
  '1e309',
  '-1e309',
  '-0',
  '-0.0',
  '0e0',
  '1e-400',
  '123456789012345678901234567890',
  '9007199254740993',
  '-9007199254740993',
  '1e21',
  '4294967296',
  '-1',
  '0.5',
  '1.0000000000000002',
  '2e-324',
  // not JSON at all
  'NaN',
  '-NaN',
  'Infinity',
  '-Infinity',
  '0x10',
  '01',
  '+1',
  '.5',
  '1.',
  '1e',
  '--1',
  '1_000',
  // NaN-ish strings
  '"NaN"',
  '"Infinity"',
  '"-0"',
  '"1e309"',
  '"0x10"',
  '" 1"',
  '"1"',
  '""',
  '"null"',
  '"undefined"',
  '"true"',
].map((s) => new Raw(s));

export const UNICODE = [
  '\ud800',
  '\udfff',
  '\udc00\ud800',
  'a\ud83d',
  '\ud83d\ude00',
  'a\u0000b',
  '\u0000',
  '\ufeff',
  '\uffff',
  '\ufffe',
  '\u2028\u2029',
  '\u202e',
  'e\u0301',
  '\u0000'.repeat(64),
  'fuzz-target\u0000',
  'fuzztask0001\u0000',
  '\u00a0',
  '\u{10ffff}',
  'ǅ',
  '\u0085',
];
export const unicodeString = fc.oneof(
  fc.constantFrom(...UNICODE),
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.tuple(fc.constantFrom(...UNICODE), short(8)).map(([u, s]) => s + u + s),
);

/** Raw bytes placed inside a JSON string literal: not valid UTF-8, or raw control characters. */
export const BAD_BYTES = [
  [0xff],
  [0xc0, 0x80],
  [0xed, 0xa0, 0x80],
  [0xed, 0xbf, 0xbf],
  [0xf4, 0x90, 0x80, 0x80],
  [0xe2, 0x80],
  [0x80],
  [0x00],
  [0x0a],
  [0x1f],
  [0xef, 0xbb, 0xbf],
  [0xf8, 0x88, 0x80, 0x80, 0x80],
];
export const MARK = '\ue000FUZZMARK\ue000';

export const protoKey = fc.constantFrom('__proto__', 'constructor', 'prototype');
export const protoValue: fc.Arbitrary<J> = fc.constantFrom<J>(
  new Obj([['polluted', true]]),
  new Obj([['prototype', new Obj([['polluted', true]])]]),
  new Obj([['__proto__', new Obj([['polluted', true]])]]),
  new Obj([
    ['toString', 'x'],
    ['valueOf', 1],
    ['hasOwnProperty', 'x'],
    ['toJSON', 'x'],
  ]),
  'polluted',
  null,
  1,
  [],
  [new Obj([['polluted', true]])],
);

export const wrongValue: fc.Arbitrary<J> = fc.oneof(
  fc.constantFrom<J>(null, true, false, 0, -1, 1.5, '', 'x', [], new Obj([]), [null], new Obj([['v', 1]])),
  fc.integer().map((n) => n as J),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((n) => n as J),
  short(12).map((s) => s as J),
  fc.constantFrom(...SPECIAL_NUMBERS),
  fc.array(fc.oneof(fc.integer(), short(4)), { maxLength: 3 }).map((a) => a as J),
);

/** A JSON array of `width` zeros, or an object of `width` keys (`{"k0":0,…}`). */
export function wideText(width: number, shape: 'array' | 'object'): string {
  if (shape === 'array') return `[${'0,'.repeat(width - 1)}0]`;
  return `{${Array.from({ length: width }, (_, i) => `"k${i}":0`).join(',')}}`;
}

/** JSON text nested `depth` levels deep in the given shape (array, object, …). */
export function deepText(depth: number, shape: string): string {
  switch (shape) {
    case 'array':
      return '['.repeat(depth) + ']'.repeat(depth);
    case 'object':
      return `${'{"a":'.repeat(depth)}null${'}'.repeat(depth)}`;
    case 'proto':
      return `${'{"__proto__":'.repeat(depth)}{"polluted":true}${'}'.repeat(depth)}`;
    case 'mixed': {
      const open: string[] = [];
      const close: string[] = [];
      for (let i = 0; i < depth; i++) {
        open.push(i % 2 ? '[' : '{"k":');
        close.push(i % 2 ? ']' : '}');
      }
      return `${open.join('')}0${close.reverse().join('')}`;
    }
    default: // unclosed
      return '['.repeat(depth);
  }
}

/** Everything generated from one valid-looking base. */
export function mutations(base: fc.Arbitrary<J>, withValid: boolean): fc.Arbitrary<Gen> {
  const arbs: fc.WeightedArbitrary<Gen>[] = [
    {
      weight: 8,
      arbitrary: fc.uint8Array({ minLength: 1, maxLength: 2048 }).map((b) => ({ kind: 'random-bytes', payload: Buffer.from(b) })),
    },
    { weight: 3, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 300 }).map((s) => utf8('random-text', s)) },
    { weight: 5, arbitrary: fc.json({ maxDepth: 4 }).map((s) => utf8('random-json', s)) },
    {
      weight: 14,
      arbitrary: base.chain((v) => {
        const bytes = Buffer.from(ser(v), 'utf8');
        // Cut the bytes (may split a UTF-8 sequence), never at 0 or the full length.
        return fc.integer({ min: 1, max: bytes.length - 1 }).map((n) => ({ kind: 'truncated', payload: bytes.subarray(0, n) }));
      }),
    },
    {
      weight: 12,
      arbitrary: base.chain((v) =>
        fc.tuple(fc.constantFrom(...allPaths(v)), wrongValue).map(([p, w]) => utf8('wrong-type-one', ser(replaceAt(v, p, () => w)))),
      ),
    },
    {
      weight: 5,
      arbitrary: base.chain((v) => {
        const leaves = leafPaths(v);
        return fc
          .array(wrongValue, { minLength: leaves.length, maxLength: leaves.length })
          .map((ws) => utf8('wrong-type-all', ser(leaves.reduce((acc, p, i) => replaceAt(acc, p, () => ws[i]), v))));
      }),
    },
    {
      weight: 4,
      arbitrary: base.chain((v) => {
        const objects = allPaths(v).filter((p) => getAt(v, p) instanceof Obj && (getAt(v, p) as Obj).entries.length > 0);
        return fc
          .constantFrom(...objects)
          .chain((p) =>
            fc
              .nat({ max: (getAt(v, p) as Obj).entries.length - 1 })
              .map((drop) => utf8('missing-field', ser(replaceAt(v, p, (o) => new Obj((o as Obj).entries.filter((_, i) => i !== drop)))))),
          );
      }),
    },
    {
      weight: 10,
      arbitrary: fc
        .tuple(
          base,
          fc.array(fc.tuple(protoKey, protoValue, fc.boolean()), { minLength: 1, maxLength: 3 }),
          fc.option(fc.tuple(fc.nat(), wrongValue)),
        )
        .map(([v, extra, breakIt]) => {
          // The same prototype keys at every object level, at the front or at the back.
          let out = mapObjects(
            v,
            (o) =>
              new Obj([
                ...extra.filter((e) => e[2]).map(([k, x]) => [k, x] as const),
                ...o.entries,
                ...extra.filter((e) => !e[2]).map(([k, x]) => [k, x] as const),
              ]),
          );
          if (breakIt) {
            const leaves = leafPaths(out);
            out = replaceAt(out, leaves[breakIt[0] % leaves.length], () => breakIt[1]);
          }
          return utf8('prototype-keys', ser(out));
        }),
    },
    {
      weight: 8,
      arbitrary: base.chain((v) => {
        const leaves = leafPaths(v);
        return fc
          .array(fc.tuple(fc.nat({ max: leaves.length - 1 }), unicodeString), { minLength: 1, maxLength: 4 })
          .map((subs) => utf8('unicode-value', ser(subs.reduce((acc, [i, s]) => replaceAt(acc, leaves[i], () => s), v))));
      }),
    },
    {
      weight: 3,
      arbitrary: base.chain((v) => {
        const objects = allPaths(v).filter((p) => getAt(v, p) instanceof Obj && (getAt(v, p) as Obj).entries.length > 0);
        return fc
          .tuple(fc.constantFrom(...objects), fc.nat(), unicodeString)
          .map(([p, n, s]) =>
            utf8(
              'unicode-key',
              ser(
                replaceAt(
                  v,
                  p,
                  (o) => new Obj((o as Obj).entries.map(([k, x], i) => [i === n % (o as Obj).entries.length ? k + s : k, x] as const)),
                ),
              ),
            ),
          );
      }),
    },
    {
      weight: 5,
      arbitrary: base.chain((v) =>
        fc.tuple(fc.constantFrom(...leafPaths(v)), fc.constantFrom(...BAD_BYTES), fc.boolean()).map(([p, bad, bom]) => {
          const text = Buffer.from(ser(replaceAt(v, p, () => new Raw(`"${MARK}"`))), 'utf8');
          const at = text.indexOf(MARK);
          const body = Buffer.concat([text.subarray(0, at), Buffer.from(bad), text.subarray(at + Buffer.byteLength(MARK))]);
          return { kind: 'unicode-raw-bytes', payload: bom ? Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), body]) : body };
        }),
      ),
    },
    {
      weight: 9,
      arbitrary: base.chain((v) => {
        const all = leafPaths(v);
        const numeric = all.filter((p) => typeof getAt(v, p) === 'number');
        const targets = numeric.length ? numeric : all;
        return fc
          .tuple(
            fc.array(fc.constantFrom(...SPECIAL_NUMBERS), { minLength: targets.length, maxLength: targets.length }),
            fc.array(fc.boolean(), { minLength: targets.length, maxLength: targets.length }),
            fc.nat({ max: targets.length - 1 }),
          )
          .map(([nums, mask, must]) =>
            utf8('numbers', ser(targets.reduce((acc, p, i) => (mask[i] || i === must ? replaceAt(acc, p, () => nums[i]) : acc), v))),
          );
      }),
    },
    {
      weight: 5,
      arbitrary: base.chain((v) =>
        fc
          .tuple(
            fc.integer({ min: 1_000, max: 10_000 }),
            fc.constantFrom('array', 'object', 'proto', 'mixed', 'unclosed'),
            fc.constantFrom(...allPaths(v)),
          )
          .map(([depth, shape, p]) => utf8(`deep-${shape}`, ser(replaceAt(v, p, () => new Raw(deepText(depth, shape)))))),
      ),
    },
    {
      weight: 5,
      arbitrary: base.chain((v) =>
        fc
          .tuple(fc.integer({ min: 1_000, max: 60_000 }), fc.constantFrom('array', 'object'), fc.constantFrom(...allPaths(v)))
          .map(([width, shape, p]) => utf8(`wide-${shape}`, ser(replaceAt(v, p, () => new Raw(wideText(width, shape)))))),
      ),
    },
  ];
  if (withValid) arbs.push({ weight: 10, arbitrary: base.map((v) => utf8('valid-wrong-id', ser(v))) });
  return fc.oneof(...arbs);
}

/** A few payloads of 1-3 MiB: a huge string in a field, a huge record key, huge garbage, a huge array. */
export function huge(base: fc.Arbitrary<J>): fc.Arbitrary<Gen> {
  const size = fc.oneof(
    fc.integer({ min: MIB, max: MAX_PAYLOAD_BYTES - 64 * 1024 }),
    fc.integer({ min: MAX_PAYLOAD_BYTES + 1, max: 3 * MIB }),
  );
  return fc
    .tuple(
      base,
      size,
      fc.constantFrom('string-field', 'record-key', 'garbage', 'array'),
      fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 8 }),
      fc.nat(),
    )
    .map(([v, n, how, chunk, pick]) => {
      const filler = chunk.repeat(Math.ceil(n / chunk.length)).slice(0, n);
      switch (how) {
        case 'string-field': {
          const strings = leafPaths(v).filter((p) => typeof getAt(v, p) === 'string');
          return utf8('huge-string', ser(replaceAt(v, strings.length ? strings[pick % strings.length] : [], () => filler)));
        }
        case 'record-key': {
          // Into env/labels when the base has one (the key then fails validation), else into the root.
          const keyOf = (p: Path): string | undefined => {
            const parent = p.length ? getAt(v, p.slice(0, -1)) : undefined;
            return parent instanceof Obj ? parent.entries[p[p.length - 1]][0] : undefined;
          };
          const records = allPaths(v).filter((p) => getAt(v, p) instanceof Obj && ['env', 'labels'].includes(keyOf(p) ?? ''));
          const p = records.length ? records[pick % records.length] : [];
          return utf8('huge-key', ser(replaceAt(v, p, (o) => new Obj([...(o as Obj).entries, [filler, 'x']]))));
        }
        case 'garbage':
          return utf8('huge-garbage', `{"v":1,"x":"${filler}`);
        default:
          return utf8('huge-array', `{"v":1,"running":[${'0,'.repeat(Math.floor(n / 2) - 1)}0]}`);
      }
    });
}
