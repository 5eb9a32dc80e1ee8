// One tenant against the others in the same process (issue 17): a hostile request program
// (test/guests/hog_req.c, no SDK) holds every fork it gets as long as the VMM lets it, spinning
// or asleep. The executor's threads are shared by every pool, so these tests check that another
// pool's light request is still served at once, not after the hog's time limit.
import { RequestPool, TimeoutError } from '../../src';
import { native } from '../../src/native';
import { describeKvm, guest, ms } from '../helpers';

const hog = guest('hog_req');
const sleep = (n: number) => new Promise((r) => setTimeout(r, n));

describeKvm('security: one tenant cannot starve another', () => {
  // Every executor thread taken by the hog: as many hog requests at once as there are threads.
  const threads = native().executorInfo().threads;

  for (const how of ['spin', 'sleep']) {
    test(`a pool whose requests ${how} on every executor thread does not hold up another pool`, async () => {
      const limit = ms(3000);
      const hogs = await RequestPool.create(hog, { size: threads, concurrency: threads, timeoutMs: limit, memoryMiB: 16 });
      const other = await RequestPool.create(hog, { size: 1, timeoutMs: limit, memoryMiB: 16 });
      try {
        await other.run('echo');
        const held = Array.from({ length: threads }, () => hogs.run(how).then(() => 'answered', (e) => e));
        await sleep(ms(100)); // the hog's requests are running
        const t0 = Date.now();
        expect((await other.run('echo')).toString()).toBe('echo');
        const waited = Date.now() - t0;
        // Before: the light request waited for a hog to reach its limit (~3 s).
        expect(waited).toBeLessThan(ms(500));
        for (const r of await Promise.all(held)) expect(r).toBeInstanceOf(TimeoutError);
        // The extra thread the other pool got goes once idle: back to the bound.
        await sleep(1500);
        expect(native().executorInfo().started).toBeLessThanOrEqual(threads);
      } finally {
        await Promise.all([hogs.close(), other.close()]);
      }
    });
  }
});
