/* Many allocations of mixed sizes, reallocs and frees; checks contents survive. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(void) {
  enum { N = 4000 };
  static unsigned char *ptrs[N];
  static size_t sizes[N];
  uint64_t seed = 12345, checksum = 0;
  for (int round = 0; round < 20; round++) {
    for (int i = 0; i < N; i++) {
      seed = seed * 6364136223846793005ull + 1442695040888963407ull;
      size_t sz = (seed >> 33) % (i % 100 == 0 ? 300000 : 2000) + 1;
      if (ptrs[i] && (seed & 1)) {
        ptrs[i] = realloc(ptrs[i], sz);
      } else {
        free(ptrs[i]);
        ptrs[i] = malloc(sz);
      }
      if (!ptrs[i]) { printf("allocation failed\n"); return 1; }
      sizes[i] = sz;
      memset(ptrs[i], (int)(i & 0xff), sz);
    }
    for (int i = 0; i < N; i++)
      for (size_t j = 0; j < sizes[i]; j += 97) {
        if (ptrs[i][j] != (unsigned char)(i & 0xff)) { printf("corrupt at %d\n", i); return 2; }
        checksum += ptrs[i][j];
      }
  }
  for (int i = 0; i < N; i++) free(ptrs[i]);
  printf("ok checksum=%llu\n", (unsigned long long)checksum);
  return 0;
}
