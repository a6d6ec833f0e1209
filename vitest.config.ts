import { defineConfig } from 'vitest/config';

// Two projects: fast pure/unit tests, and integration tests that start real etcd, the EC2 endpoint
// and (for the host agent) a real systemd. Integration files run one at a time: they start servers
// and child processes, and the machine has two cores.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['src/**/*.test.ts'],
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 180_000,
          fileParallelism: false,
          pool: 'forks',
        },
      },
    ],
  },
});
