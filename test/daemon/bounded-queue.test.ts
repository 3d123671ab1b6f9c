import { describe, expect, it } from 'vitest';
import { BoundedQueue } from '../../src/daemon/bounded-queue.js';

interface Item {
  id: number;
  value: number;
}

async function drainAll<T>(q: BoundedQueue<T>): Promise<T[]> {
  q.close();
  const out: T[] = [];
  for await (const x of q.drain()) out.push(x);
  return out;
}

describe('BoundedQueue', () => {
  it('without a value, a full queue drops the new item and counts it', async () => {
    const q = new BoundedQueue<number>(3);
    for (let i = 0; i < 5; i++) q.push(i);
    expect(q.size).toBe(3);
    expect(q.droppedTotal).toBe(2);
    expect(q.shedOldestTotal).toBe(0);
    expect(await drainAll(q)).toEqual([0, 1, 2]);
  });

  it('full, it sheds the oldest item of the least value to make room, and counts it by value', async () => {
    const q = new BoundedQueue<Item>(3, (x) => x.value);
    q.push({ id: 1, value: 2 });
    q.push({ id: 2, value: 0 });
    q.push({ id: 3, value: 0 });
    // Full: the oldest of least value (id 2) goes for a new item worth more.
    expect(q.push({ id: 4, value: 2 })).toBe(true);
    // Then id 3 (value 0) for id 5; then id 5 (value 1), now the least, for id 6.
    expect(q.push({ id: 5, value: 1 })).toBe(true);
    expect(q.push({ id: 6, value: 2 })).toBe(true);
    expect(q.droppedTotal).toBe(3);
    expect(q.shedOldestTotal).toBe(3);
    expect(q.droppedByValue).toEqual([2, 1]);
    expect((await drainAll(q)).map((x) => x.id)).toEqual([1, 4, 6]);
  });

  it('full of work worth more, it drops the new item of less value', async () => {
    const q = new BoundedQueue<Item>(2, (x) => x.value);
    q.push({ id: 1, value: 2 });
    q.push({ id: 2, value: 2 });
    expect(q.push({ id: 3, value: 0 })).toBe(false);
    expect(q.droppedTotal).toBe(1);
    expect(q.shedOldestTotal).toBe(0);
    expect(q.droppedByValue).toEqual([1]);
    expect((await drainAll(q)).map((x) => x.id)).toEqual([1, 2]);
  });

  it('keeps order and its bound through many sheds while it is drained', async () => {
    const q = new BoundedQueue<Item>(100, (x) => x.value);
    const got: number[] = [];
    const reader = (async () => {
      for await (const x of q.drain()) got.push(x.id);
    })();
    for (let i = 0; i < 10_000; i++) {
      q.push({ id: i, value: i % 3 });
      expect(q.size).toBeLessThanOrEqual(100);
      if (i % 1000 === 0) await new Promise((r) => setImmediate(r));
    }
    q.close();
    await reader;
    expect(got.length + q.droppedTotal).toBe(10_000);
    expect([...got].sort((a, b) => a - b)).toEqual(got);
  });
});
