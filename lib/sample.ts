/**
 * Reading a sample by slot name. Every source (the addon's Float64Array, the agent's JSON line,
 * the procfs readers) speaks the slot names of native/probe/sample.h, so one mapping per
 * allocator (lib/allocators/) serves them all.
 */

/** A slot's value, or null when the source did not provide it. */
export type SampleReader = (slot: string) => number | null;

/** One sample, whatever its source: single slots by name, and groups of slots by name prefix. */
export interface Sample {
  read: SampleReader;
  /** The slots present whose names start with `prefix`, prefix removed; null when none is. */
  group(prefix: string): Record<string, number> | null;
}

/** The slots whose names share a prefix: where each sits in the names array, and its name without the prefix. */
interface SlotGroup {
  at: number[];
  keys: string[];
}

/**
 * Where each slot of one names array sits, worked out once per array: a source's names are fixed
 * for the life of the process (the addon's sampleSlotNames()), while samples are taken at up to
 * 10 Hz and must stay within a few microseconds (limits.md, "Implications for goals").
 */
interface SlotLayout {
  index: Map<string, number>;
  groups: Map<string, SlotGroup>;
}

const layoutCache = new WeakMap<readonly string[], SlotLayout>();

function layoutOf(names: readonly string[]): SlotLayout {
  let layout = layoutCache.get(names);
  if (layout === undefined) {
    layout = { index: new Map(names.map((name, at) => [name, at])), groups: new Map() };
    layoutCache.set(names, layout);
  }
  return layout;
}

function groupOf(names: readonly string[], layout: SlotLayout, prefix: string): SlotGroup {
  let group = layout.groups.get(prefix);
  if (group === undefined) {
    group = { at: [], keys: [] };
    for (let at = 0; at < names.length; at++) {
      if (!names[at].startsWith(prefix)) continue;
      group.at.push(at);
      group.keys.push(names[at].slice(prefix.length));
    }
    layout.groups.set(prefix, group);
  }
  return group;
}

/** A sample over the addon's slot array; `names` is the addon's sampleSlotNames(). NaN means "not provided". */
export function sampleFromSlots(names: readonly string[], slots: Float64Array): Sample {
  const layout = layoutOf(names);
  return {
    read(slot) {
      const at = layout.index.get(slot);
      if (at === undefined) return null;
      const value = slots[at];
      return Number.isFinite(value) ? value : null;
    },
    group(prefix) {
      const { at, keys } = groupOf(names, layout, prefix);
      let out: Record<string, number> | null = null;
      for (let i = 0; i < at.length; i++) {
        const value = slots[at[i]];
        if (!Number.isFinite(value)) continue;
        out ??= {};
        out[keys[i]] = value;
      }
      return out;
    },
  };
}

/** A sample over a plain record (the agent's wire format, procfs readers); `names` are the slots it may carry. */
export function sampleFromRecord(names: readonly string[], record: Readonly<Record<string, unknown>>): Sample {
  const layout = layoutOf(names);
  const read = readerForRecord(record);
  return {
    read,
    group(prefix) {
      const { at, keys } = groupOf(names, layout, prefix);
      let out: Record<string, number> | null = null;
      for (let i = 0; i < at.length; i++) {
        const value = read(names[at[i]]);
        if (value === null) continue;
        out ??= {};
        out[keys[i]] = value;
      }
      return out;
    },
  };
}

/** Reader over the addon's slot array; `names` is the addon's sampleSlotNames(). */
export function readerForSlots(names: readonly string[], slots: Float64Array): SampleReader {
  return sampleFromSlots(names, slots).read;
}

/** Reader over a plain record (the agent's wire format, procfs readers). */
export function readerForRecord(record: Readonly<Record<string, unknown>>): SampleReader {
  return (slot) => {
    const value = record[slot];
    return typeof value === 'number' && Number.isFinite(value) ? value : null;
  };
}
