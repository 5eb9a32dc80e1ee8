/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { isolatedModules: true, tsconfig: 'tsconfig.json' }] },
  // flatc >= 23 emits imports ending in .js; map them back to the .ts sources.
  // Generated stubs import farcall/flatbuffers, which is this package's src/flatbuffers.ts.
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1', '^farcall/flatbuffers$': '<rootDir>/src/flatbuffers.ts' },
  // FARCALL_TIME_SCALE: emulated runs (scripts/hwkvm-lane.sh) get proportionally more time.
  testTimeout: 120000 * Math.max(1, Number(process.env.FARCALL_TIME_SCALE) || 1),
};
