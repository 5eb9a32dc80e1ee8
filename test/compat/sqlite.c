// SQLite from Debian's libsqlite3.a: runs the SQL read from stdin against the database named
// by argv[1] (":memory:" by default) and prints every row, columns separated by '|'.
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>

static int row(void *unused, int n, char **vals, char **names) {
  (void)unused;
  (void)names;
  for (int i = 0; i < n; i++) printf("%s%s", i ? "|" : "", vals[i] ? vals[i] : "NULL");
  printf("\n");
  return 0;
}

int main(int argc, char **argv) {
  size_t cap = 1 << 16, len = 0;
  char *sql = malloc(cap);
  for (size_t n; (n = fread(sql + len, 1, cap - len - 1, stdin)) > 0;) {
    len += n;
    if (len + 1 == cap) sql = realloc(sql, cap *= 2);
  }
  sql[len] = 0;
  sqlite3 *db;
  if (sqlite3_open(argc > 1 ? argv[1] : ":memory:", &db) != SQLITE_OK) {
    fprintf(stderr, "open: %s\n", sqlite3_errmsg(db));
    return 1;
  }
  char *err = NULL;
  int rc = sqlite3_exec(db, sql, row, NULL, &err);
  if (rc != SQLITE_OK) fprintf(stderr, "error: %s\n", err);
  sqlite3_close(db);
  return rc == SQLITE_OK ? 0 : 1;
}
