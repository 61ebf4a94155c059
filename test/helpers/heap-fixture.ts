/** The test fixture addon (test/fixtures/heap_fixture.cc, built by the normal build). */
import bindings from 'bindings';

export interface HeapFixture {
  /** count blocks of size bytes, written; returns a handle. */
  retain(count: number, size: number): number;
  /** random sizes in [min, max], all but every keepEvery-th freed: fine fragmentation. */
  fragment(count: number, minSize: number, maxSize: number, keepEvery: number, seed: number): number;
  /** frees a handle's blocks; returns how many. */
  release(handle: number): number;
  /** allocates and forgets bytes. */
  leak(bytes: number): void;
  /** malloc_usable_size of a fresh block of `bytes`. */
  usableSize(bytes: number): number;
}

export const heapFixture = bindings('heap_fixture') as HeapFixture;
