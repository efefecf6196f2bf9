/**
 * -m string (xt_string.c over lib/textsearch.c): a byte pattern searched
 * in the packet from `--from` to `--to`, offsets counted as Linux counts
 * them, from the start of the IP header (the skb data at the netfilter
 * hooks), with the match wholly inside [from, min(to, IP length)) —
 * `skb_find_text` accepts a hit only when `pos + patlen <= to - from`.
 *
 * Two algorithms, as the kernel's `bm` (ts_bm.c) and `kmp` (ts_kmp.c):
 * Boyer-Moore with the bad-character and good-suffix rules, and
 * Knuth-Morris-Pratt. Both report the first occurrence, so they always
 * agree (Linux's bm is meant to, too; sluice's is the textbook one).
 * `--icase` folds text and pattern with the kernel's `toupper`, which
 * also folds Latin-1 letters (0xE0-0xFE minus 0xF7, and 0xDF/0xFF, as
 * lib/ctype.c classes them). The pattern and its tables are built at
 * load; the search allocates nothing.
 */
import type { MatchNode, OptionNode } from "../ast.js";
import type { RuleContext } from "../context.js";
import { MATCHES } from "../extensions.js";
import type { CompiledMatch, MatchEnv, MatchPool } from "../match-api.js";
import { KIND } from "./kinds.js";
import { Opts, fail, parseUint } from "./parse.js";

/** XT_STRING_MAX_PATTERN_SIZE. */
const MAX_PATTERN = 128;

/** The kernel's `toupper` over all 256 byte values (lib/ctype.c classes). */
export const TOUPPER: Uint8Array = (() => {
  const t = new Uint8Array(256);
  for (let c = 0; c < 256; c++) {
    const lower = (c >= 0x61 && c <= 0x7a) || (c >= 0xdf && c <= 0xff && c !== 0xf7);
    t[c] = lower ? c - 0x20 : c;
  }
  return t;
})();

const utf8 = new TextEncoder();

/**
 * `--hex-string` as libxt_string's `parse_hex_string` reads it: text
 * bytes, `|41 42|` blocks of hex pairs (spaces allowed between pairs and
 * after the opening bar), `\` escaping the next byte outside a block.
 */
export function parseHexString(o: OptionNode, text: string): Uint8Array {
  const s = utf8.encode(text);
  const n = s.length;
  if (n === 0) fail(o, "STRING must contain at least one char");
  const out: number[] = [];
  let hex = false, literal = false;
  const isHex = (c: number | undefined): boolean => c !== undefined && /[0-9a-fA-F]/.test(String.fromCharCode(c));
  for (let i = 0; i < n; ) {
    const ch = s[i]!;
    if (ch === 0x5c && !hex) {
      literal = true;
    } else if (ch === 0x5c) {
      fail(o, "Cannot include literals in hex data");
    } else if (ch === 0x7c) {
      if (hex) hex = false;
      else {
        hex = true;
        while (s[i + 1] === 0x20) i++;
      }
      if (i + 1 >= n) break;
      i++;
      continue;
    }
    if (literal) {
      if (i + 1 >= n) fail(o, "Bad literal placement at end of string");
      out.push(s[i + 1]!);
      i += 2;
      literal = false;
    } else if (hex) {
      if (i + 1 >= n) fail(o, "Odd number of hex digits");
      if (i + 2 >= n) fail(o, "Invalid hex block");
      if (!isHex(s[i])) fail(o, `Invalid hex char '${String.fromCharCode(s[i]!)}'`);
      if (!isHex(s[i + 1])) fail(o, `Invalid hex char '${String.fromCharCode(s[i + 1]!)}'`);
      out.push(parseInt(String.fromCharCode(s[i]!, s[i + 1]!), 16));
      i += s[i + 2] === 0x20 ? 3 : 2;
    } else {
      out.push(ch);
      i++;
    }
    if (out.length > MAX_PATTERN) fail(o, `STRING too long "${text}"`);
  }
  // An unclosed block at the very end is accepted as iptables accepts it ("ab|" is "ab").
  return Uint8Array.from(out);
}

/** Boyer-Moore bad-character table: shift by the distance from a byte's last occurrence in pattern[0, m-1) to the end. */
export function bmBadChar(p: Uint8Array): Int32Array {
  const m = p.length, t = new Int32Array(256).fill(m);
  for (let i = 0; i < m - 1; i++) t[p[i]!] = m - 1 - i;
  return t;
}

/** Boyer-Moore good-suffix table (Charras & Lecroq's `preBmGs`): the shift after a mismatch at position i. */
export function bmGoodSuffix(p: Uint8Array): Int32Array {
  const m = p.length, suff = new Int32Array(m), gs = new Int32Array(m).fill(m);
  suff[m - 1] = m;
  let g = m - 1, f = 0;
  for (let i = m - 2; i >= 0; i--) {
    if (i > g && suff[i + m - 1 - f]! < i - g) suff[i] = suff[i + m - 1 - f]!;
    else {
      if (i < g) g = i;
      f = i;
      while (g >= 0 && p[g] === p[g + m - 1 - f]) g--;
      suff[i] = f - g;
    }
  }
  let j = 0;
  for (let i = m - 1; i >= 0; i--) {
    if (suff[i] === i + 1) for (; j < m - 1 - i; j++) if (gs[j] === m) gs[j] = m - 1 - i;
  }
  for (let i = 0; i <= m - 2; i++) gs[m - 1 - suff[i]!] = m - 1 - i;
  return gs;
}

/** KMP failure function: for each prefix, the length of its longest proper border. */
export function kmpPrefix(p: Uint8Array): Int32Array {
  const m = p.length, t = new Int32Array(m);
  for (let q = 1, k = 0; q < m; q++) {
    while (k > 0 && p[k] !== p[q]) k = t[k - 1]!;
    if (p[k] === p[q]) k++;
    t[q] = k;
  }
  return t;
}

/*
 * Words: +0 from  +1 to  +2 icase  +3 invert  +4 pattern blob index  +5 pattern length m
 *   bm:  +6 .. +261 bad-character table, +262 .. +262+m good-suffix table
 *   kmp: +6 .. +6+m prefix table
 */
const W_TABLES = 6;

/** -m string. */
export function compileString(node: MatchNode, env: MatchEnv): CompiledMatch {
  const o = new Opts(node, MATCHES["string"]!, "string");
  const algoOpt = o.get("--algo");
  if (algoOpt === undefined) return fail(node, 'string: option "--algo" must be specified');
  const algo = o.arg(algoOpt);
  if (algo !== "bm" && algo !== "kmp") fail(algoOpt, `string: unknown algorithm "${algo}": Linux's -m string knows bm and kmp (it refuses others: No chain/target/match by that name)`);
  o.exclusive("--string", "--hex-string");
  const so = o.get("--string"), ho = o.get("--hex-string");
  let pat: Uint8Array;
  if (so !== undefined) {
    pat = utf8.encode(o.arg(so));
    if (pat.length > MAX_PATTERN) fail(so, `STRING too long "${o.arg(so)}"`);
  } else if (ho !== undefined) {
    pat = parseHexString(ho, o.arg(ho));
  } else {
    return fail(node, "STRING match: You must specify `--string' or `--hex-string'");
  }
  const po = (so ?? ho)!;
  if (pat.length === 0) fail(po, "string: an empty pattern is refused by Linux (textsearch_prepare: Invalid argument)");
  if (pat.length > MAX_PATTERN) fail(po, `string: the pattern has ${pat.length} bytes, Linux takes at most ${MAX_PATTERN}`);
  const fromOpt = o.get("--from"), toOpt = o.get("--to");
  const from = fromOpt !== undefined ? parseUint(fromOpt, "string", o.arg(fromOpt), 0, 65535) : 0;
  const to = toOpt !== undefined ? parseUint(toOpt, "string", o.arg(toOpt), 0, 65535) : 65535;
  if (from > to) fail(toOpt ?? fromOpt!, `string: --from ${from} is beyond --to ${to} (Linux refuses it: Invalid argument)`);
  const icase = o.get("--icase") !== undefined;
  if (icase) pat = pat.map((b) => TOUPPER[b]!);
  const m = pat.length, bm = algo === "bm";
  const off = env.pool.reserveI32(W_TABLES + (bm ? 256 + m : m));
  const a = env.pool.i32;
  a[off] = from;
  a[off + 1] = to;
  a[off + 2] = icase ? 1 : 0;
  a[off + 3] = po.negated ? 1 : 0;
  a[off + 4] = env.pool.addBlob(pat);
  a[off + 5] = m;
  if (bm) {
    a.set(bmBadChar(pat), off + W_TABLES);
    a.set(bmGoodSuffix(pat), off + W_TABLES + 256);
  } else {
    a.set(kmpPrefix(pat), off + W_TABLES);
  }
  return { kind: bm ? KIND.STRING_BM : KIND.STRING_KMP, off };
}

/** Boyer-Moore search of the pattern at `off` in t[start, end); returns the first position or -1. */
export function bmSearch(a: Int32Array, off: number, pat: Uint8Array, t: Uint8Array, start: number, end: number, icase: boolean): number {
  const m = pat.length, bad = off + W_TABLES, gs = bad + 256;
  for (let s = start; s <= end - m; ) {
    let j = m - 1;
    let c = 0;
    for (; j >= 0; j--) {
      c = icase ? TOUPPER[t[s + j]] : t[s + j];
      if (c !== pat[j]) break;
    }
    if (j < 0) return s;
    const g = a[gs + j], b = a[bad + c] - (m - 1 - j);
    s += g > b ? g : b;
  }
  return -1;
}

/** Knuth-Morris-Pratt search of the pattern at `off` in t[start, end); returns the first position or -1. */
export function kmpSearch(a: Int32Array, off: number, pat: Uint8Array, t: Uint8Array, start: number, end: number, icase: boolean): number {
  const m = pat.length, pi = off + W_TABLES;
  let q = 0;
  for (let i = start; i < end; i++) {
    const c = icase ? TOUPPER[t[i]] : t[i];
    while (q > 0 && pat[q] !== c) q = a[pi + q - 1];
    if (pat[q] === c) q++;
    if (q === m) return i + 1 - m;
  }
  return -1;
}

/** `string_mt`: a hit wholly inside [from, min(to, IP length)) of the packet, XOR invert. */
export function evalString(off: number, pool: MatchPool, c: RuleContext, bm: boolean): boolean {
  const a = pool.i32, p = c.pkt;
  const to = a[off + 1] < p.length ? a[off + 1] : p.length;
  const start = p.off + a[off], end = p.off + to;
  const pat = pool.blobs[a[off + 4]];
  const icase = a[off + 2] !== 0;
  const pos = start >= end ? -1 : bm ? bmSearch(a, off, pat, p.buf, start, end, icase) : kmpSearch(a, off, pat, p.buf, start, end, icase);
  return (pos >= 0) !== (a[off + 3] !== 0);
}
