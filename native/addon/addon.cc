// The addon's entry point: only the exports table. Argument validation and every user-facing
// sentence live in TypeScript (lib/); these functions trust their (already checked) arguments.
#include <napi.h>

#include "bindings.h"

namespace allocscope {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("detect", Napi::Function::New(env, Detect));
  exports.Set("sampleSlotNames", Napi::Function::New(env, SampleSlotNames));
  ExportBoundSampling(env, exports);
  exports.Set("sampleAsync", Napi::Function::New(env, SampleAsync));
  exports.Set("glibcMallinfo2", Napi::Function::New(env, GlibcMallinfo2));
  exports.Set("glibcMallocInfo", Napi::Function::New(env, GlibcMallocInfo));
  exports.Set("glibcMallocInfoAsync", Napi::Function::New(env, GlibcMallocInfoAsync));
  exports.Set("glibcMallocTrim", Napi::Function::New(env, GlibcMallocTrim));
  exports.Set("glibcCensus", Napi::Function::New(env, GlibcCensus));
  exports.Set("glibcCensusAsync", Napi::Function::New(env, GlibcCensusAsync));
  exports.Set("glibcGuardedSampleAsync", Napi::Function::New(env, GlibcGuardedSampleAsync));
  exports.Set("jemallocReadAny", Napi::Function::New(env, JemallocReadAny));
  exports.Set("jemallocReadString", Napi::Function::New(env, JemallocReadString));
  exports.Set("jemallocWrite", Napi::Function::New(env, JemallocWrite));
  exports.Set("jemallocBins", Napi::Function::New(env, JemallocBins));
  exports.Set("jemallocStatsPrint", Napi::Function::New(env, JemallocStatsPrint));
  exports.Set("jemallocPurge", Napi::Function::New(env, JemallocPurge));
  exports.Set("tcmallocProperty", Napi::Function::New(env, TcmallocProperty));
  exports.Set("tcmallocReleaseFreeMemory", Napi::Function::New(env, TcmallocReleaseFreeMemory));
  exports.Set("tcmallocStatsText", Napi::Function::New(env, TcmallocStatsText));
  exports.Set("mimallocProcessInfo", Napi::Function::New(env, MimallocProcessInfo));
  exports.Set("mimallocCollect", Napi::Function::New(env, MimallocCollect));
  exports.Set("peerCredentials", Napi::Function::New(env, PeerCredentials));
  return exports;
}

}  // namespace allocscope

// NODE_API_MODULE token-pastes its second argument, so it needs an unqualified name.
static Napi::Object InitAllocscope(Napi::Env env, Napi::Object exports) {
  return allocscope::Init(env, exports);
}
NODE_API_MODULE(allocscope, InitAllocscope)
