/**
 * allocscope: why does this process's memory grow? Allocator-aware snapshots (glibc, jemalloc,
 * tcmalloc, mimalloc) next to the kernel's and V8's figures, with the ratios between them.
 */
export { allocator, purge, snapshot, snapshotAsync } from './targets/self';
export type { AllocatorReport, SnapshotOptions } from './targets/self';
export { glibc } from './allocators/glibc';
export type { GlibcCensus, GlibcCensusOptions, Mallinfo2 } from './allocators/glibc';
export type { MallocInfo, MallocInfoArena, SizeBucket, FreeChunkTotals } from './allocators/glibc-malloc-info';
export { jemalloc } from './allocators/jemalloc';
export type { JemallocBin, JemallocSummary, MallctlType, MallctlValue } from './allocators/jemalloc';
export { tcmalloc } from './allocators/tcmalloc';
export { mimalloc } from './allocators/mimalloc';
export type { ReleaseResult } from './allocators/types';
export { assertNoNativeLeak, measureNativeGrowth } from './testing';
export type { GrowthOptions, NativeGrowth, NoLeakOptions } from './testing';
export { serve } from './serve';
export type { ServeHandle, ServeOptions } from './serve';
export { readAgentSnapshot, agentLibraryPath } from './targets/agent';
export { attachAgent } from './targets/attach';
export type { AttachOptions, AttachResult } from './targets/attach';
export { inspectProcTarget, openProcTarget, ProcTarget, readProcTarget } from './proc/target';
export type { ProcInspection, ProcTargetOptions } from './proc/target';
export { DEFAULT_SMAPS_GATE_POLICY, SmapsGate } from './proc/smaps-rollup';
export type { SmapsGateDecision, SmapsGatePolicy } from './proc/smaps-rollup';
export type { MapsSummary, RegionTotals } from './proc/maps';
export type { ProcStatus } from './proc/status';
export { monitor, Monitor } from './monitor';
export type { MonitorEvents, MonitorOptions, MonitorStats, MonitorThresholds, SampleEvent, ThresholdEvent, ThresholdName } from './monitor';
export { DEFAULT_COST_BUDGET, SnapshotGovernor } from './cost-budget';
export type { CostBudget, GlibcCensusDecision, GovernedSample, SampleTier } from './cost-budget';
export { runCompare } from './compare/run';
export type { CompareOptions } from './compare/run';
export { parseVariants } from './compare/variants';
export type { CompareVariant } from './compare/variants';
export { parseLoad } from './compare/load';
export type { LoadSpec } from './compare/load';
export type { CompareRunStatus, CompareSummary, CompareVariantAggregate, CompareVariantRun } from './compare/summary';
export { loadReportInput } from './report/run-loader';
export type { ReportInput, ReportRun } from './report/run-loader';
export { renderReport, writeReport } from './report/html';
export type { RenderOptions, WrittenReport } from './report/html';
export { diagnose, DEFAULT_THRESHOLDS } from './verdict';
export type {
  Attribution,
  DiagnoseOptions,
  DiagnoseThresholds,
  Evidence,
  GrowthFloor,
  InsufficientReason,
  RatioName,
  Remedy,
  RemedyCost,
  RemedyId,
  SeriesName,
  Trend,
  TrendFit,
  Verdict,
  VerdictKind,
  WindowFacts,
} from './verdict';
export { AllocscopeError } from './errors';
export type { AllocscopeErrorCode } from './errors';
export type {
  AllocatorBytes,
  AllocatorIdentity,
  AllocatorName,
  CostClass,
  InsightLevel,
  ProcessBytes,
  Ratio,
  Snapshot,
  SnapshotCost,
  SnapshotRatios,
  SnapshotSource,
  V8Bytes,
} from './snapshot';
