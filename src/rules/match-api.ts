/**
 * The contract between the rule compiler (compile.ts) and the matches
 * (matches.ts): a match is compiled once, at load, into words of a shared
 * pool, and evaluated per packet by `evalMatch(kind, off, pool, ctx)`, one
 * switch over small integer kinds (no matcher objects, no closures: the
 * call site stays monomorphic however many kinds a ruleset uses).
 */
import { ERR, SluiceError } from "../errors.js";
import type { SourcePos } from "./ast.js";
import type { TableName } from "./extensions.js";

/** A ruleset that cannot be loaded; `message` starts with `FILE:LINE:COL: `. */
export class RuleError extends SluiceError {
  readonly file: string;
  readonly line: number;
  readonly col: number;
  /** The message without the position. */
  readonly reason: string;
  constructor(pos: SourcePos, reason: string) {
    super(ERR.RULES, `${pos.file}:${pos.line}:${pos.col}: ${reason}`);
    this.name = "RuleError";
    this.file = pos.file;
    this.line = pos.line;
    this.col = pos.col;
    this.reason = reason;
  }
}

/**
 * Storage of compiled matches, built at load and read per packet.
 * - `i32`: the matches' parameters (ports, masks, flags...), append-only while compiling;
 * - `f64`: mutable per-rule state that must not be shared (limit's tokens, statistic's counter);
 * - `blobs`: byte patterns (`-m string`), by index;
 * - `objects`: bounded tables a match owns (`-m recent`, `-m hashlimit`), by index.
 */
export class MatchPool {
  i32 = new Int32Array(256);
  i32Length = 0;
  f64 = new Float64Array(64);
  f64Length = 0;
  readonly blobs: Uint8Array[] = [];
  readonly objects: unknown[] = [];

  /** Appends words; returns the offset of the first. */
  push(...words: number[]): number {
    const off = this.i32Length;
    this.reserveI32(words.length);
    for (let k = 0; k < words.length; k++) this.i32[off + k] = words[k]!;
    return off;
  }

  /** Reserves `n` zeroed words; returns their offset. */
  reserveI32(n: number): number {
    const off = this.i32Length;
    if (off + n > this.i32.length) {
      const next = new Int32Array(Math.max(this.i32.length * 2, off + n));
      next.set(this.i32.subarray(0, off));
      this.i32 = next;
    }
    this.i32Length = off + n;
    return off;
  }

  /** Reserves `n` state slots (initialised to `init`); returns their offset. */
  reserveF64(n: number, init = 0): number {
    const off = this.f64Length;
    if (off + n > this.f64.length) {
      const next = new Float64Array(Math.max(this.f64.length * 2, off + n));
      next.set(this.f64.subarray(0, off));
      this.f64 = next;
    }
    this.f64.fill(init, off, off + n);
    this.f64Length = off + n;
    return off;
  }

  addBlob(b: Uint8Array): number {
    this.blobs.push(b);
    return this.blobs.length - 1;
  }

  addObject(o: unknown): number {
    this.objects.push(o);
    return this.objects.length - 1;
  }
}

/** What a match's compiler knows about the rule it is in. */
export interface MatchEnv {
  family: 4 | 6;
  table: TableName;
  chain: string;
  /** The rule's `-p` (0: any) and its negation: `-m tcp` needs `-p tcp` (iptables refuses it otherwise). */
  proto: number;
  protoNegated: boolean;
  pool: MatchPool;
  /**
   * Named state that survives a reload (Linux keeps `-m recent` lists and
   * hashlimit tables by name across iptables-restore): the previous
   * ruleset's objects by key (e.g. "recent:DEFAULT"), to reuse when the
   * new rule asks for the same name with compatible parameters; the new
   * ruleset records its own here too.
   */
  named: Map<string, unknown>;
}

/** A compiled match: which kind, where its words start. */
export interface CompiledMatch {
  kind: number;
  off: number;
}
