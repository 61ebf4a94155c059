// Declarations of every function the addon exports. Each carries its JS signature; the typed
// contract on the TypeScript side is lib/binding.ts (NativeBinding).
#ifndef ALLOCSCOPE_ADDON_BINDINGS_H_
#define ALLOCSCOPE_ADDON_BINDINGS_H_

#include <napi.h>

namespace allocscope {

// sample_binding.cc
// detect(): { kind: number, name, version, detectedBy, mallocLibrary, symbolPrefix, mallocAllocator }
Napi::Value Detect(const Napi::CallbackInfo& info);
// sampleSlotNames(): string[]   (slot order of sampleInto)
Napi::Value SampleSlotNames(const Napi::CallbackInfo& info);
// bindSlots(slots: Float64Array): void            (per env; slots.length >= slot count)
// sampleBound(allocatorKind: number, flags: number): void   (samples into the bound slots)
void ExportBoundSampling(Napi::Env env, Napi::Object exports);
// sampleAsync(allocatorKind: number, flags: number): Promise<Float64Array>
Napi::Value SampleAsync(const Napi::CallbackInfo& info);

// glibc_binding.cc
// glibcMallinfo2(): { arena, ordblks, ..., keepcost, fromLegacyMallinfo: boolean } | null
Napi::Value GlibcMallinfo2(const Napi::CallbackInfo& info);
// glibcMallocInfoAsync(): Promise<string | null>   (walks every free chunk: off the JS thread)
Napi::Value GlibcMallocInfoAsync(const Napi::CallbackInfo& info);
// glibcMallocInfo(): string | null
Napi::Value GlibcMallocInfo(const Napi::CallbackInfo& info);
// glibcMallocTrim(pad: number): 0 | 1 | -1
Napi::Value GlibcMallocTrim(const Napi::CallbackInfo& info);
// glibcCensus(maxChunks: number): { status, arenas, arena, ordblks, smblks, fordblks, fsmblks, keepcost, listedChunks, complete, ns }
Napi::Value GlibcCensus(const Napi::CallbackInfo& info);
// glibcCensusAsync(maxChunks: number): Promise<same as glibcCensus>
Napi::Value GlibcCensusAsync(const Napi::CallbackInfo& info);
// glibcGuardedSampleAsync(allocatorKind, flags, maxChunks, tries): Promise<{ census, slots: Float64Array | null }>
// (a census, then sampleAsync's read on the same worker when the census allows it: glibc_binding.cc)
Napi::Value GlibcGuardedSampleAsync(const Napi::CallbackInfo& info);

// jemalloc_binding.cc
// jemallocReadAny(name: string): { errno: number, size?: 1|4|8, bits?: bigint }
Napi::Value JemallocReadAny(const Napi::CallbackInfo& info);
// jemallocReadString(name: string): { errno: number, value?: string }
Napi::Value JemallocReadString(const Napi::CallbackInfo& info);
// jemallocWrite(name: string, kind: 'void'|'sized'|'string', value?: bigint|string, size?: 1|4|8): number (errno)
Napi::Value JemallocWrite(const Napi::CallbackInfo& info);
// jemallocBins(): { errno: number, bins?: Array<{ size, nregs, slab_size, curregs, curslabs, nonfull_slabs }> }
Napi::Value JemallocBins(const Napi::CallbackInfo& info);
// jemallocStatsPrint(opts: string): string | null
Napi::Value JemallocStatsPrint(const Napi::CallbackInfo& info);
// jemallocPurge(): number (errno)
Napi::Value JemallocPurge(const Napi::CallbackInfo& info);

// tcmalloc_binding.cc
// tcmallocProperty(name: string): number | null   (null: unknown property or no tcmalloc)
Napi::Value TcmallocProperty(const Napi::CallbackInfo& info);
// tcmallocReleaseFreeMemory(): boolean
Napi::Value TcmallocReleaseFreeMemory(const Napi::CallbackInfo& info);
// tcmallocStatsText(): string | null
Napi::Value TcmallocStatsText(const Napi::CallbackInfo& info);

// mimalloc_binding.cc
// mimallocProcessInfo(): { elapsed_msecs, ..., page_faults } | null
Napi::Value MimallocProcessInfo(const Napi::CallbackInfo& info);
// mimallocCollect(force: boolean): boolean
Napi::Value MimallocCollect(const Napi::CallbackInfo& info);

// socket_binding.cc
// peerCredentials(fd: number): { pid, uid, gid } | null
Napi::Value PeerCredentials(const Napi::CallbackInfo& info);

}  // namespace allocscope

#endif
