import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // e2e tests create network namespaces and load eBPF: keep them off each other's toes
    fileParallelism: true,
    pool: 'forks',
  },
});
