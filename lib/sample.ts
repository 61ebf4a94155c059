/**
 * Reading a sample by slot name. Every source (the addon's Float64Array, the agent's JSON line,
 * the procfs readers) speaks the slot names of native/probe/sample.h, so one mapping per
 * allocator (lib/allocators/) serves them all.
 */

/** A slot's value, or null when the source did not provide it. */
export type SampleReader = (slot: string) => number | null;

/** Reader over the addon's slot array; `names` is the addon's sampleSlotNames(). */
export function readerForSlots(names: readonly string[], slots: Float64Array): SampleReader {
  const index = slotIndex(names);
  return (slot) => {
    const at = index.get(slot);
    if (at === undefined) return null;
    const value = slots[at];
    return Number.isFinite(value) ? value : null;
  };
}

/** Reader over a plain record (the agent's wire format, procfs readers). */
export function readerForRecord(record: Readonly<Record<string, unknown>>): SampleReader {
  return (slot) => {
    const value = record[slot];
    return typeof value === 'number' && Number.isFinite(value) ? value : null;
  };
}

/** All slots present in a reader whose names start with `prefix`, prefix removed. */
export function slotsWithPrefix(read: SampleReader, names: readonly string[], prefix: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const value = read(name);
    if (value !== null) out[name.slice(prefix.length)] = value;
  }
  return out;
}

const indexCache = new WeakMap<readonly string[], Map<string, number>>();
function slotIndex(names: readonly string[]): Map<string, number> {
  let index = indexCache.get(names);
  if (index === undefined) {
    index = new Map(names.map((name, at) => [name, at]));
    indexCache.set(names, index);
  }
  return index;
}
